// Types of chart.js for the TypeScript that imports it (its unit test); the page loads chart.js itself.

export function scale(domain: readonly [number, number], range: readonly [number, number]): (v: number) => number;
export function valueTicks(max: number, count?: number): { top: number; ticks: number[] };
export function timeTicks(t0: number, t1: number, count?: number): { step: number; ticks: number[] };
export function linePath(points: ReadonlyArray<readonly [number, number | null]>): string;
export function bandPath(xs: readonly number[], lows: readonly number[], highs: readonly number[]): string;
export function stack(series: ReadonlyArray<{ values: ReadonlyArray<number | null> }>): { lows: number[]; highs: number[] }[];

export interface PlotSeries {
  key: string;
  values: ReadonlyArray<number | null>;
}

export interface PlotLayout {
  shapes: { key: string; d: string; last: { x: number; y: number } | undefined }[];
  yTicks: { value: number; y: number }[];
  xTicks: { t: number; x: number }[];
  timeStep: number;
}

export function layoutPlot(options: {
  times: readonly number[];
  series: readonly PlotSeries[];
  stacked?: boolean;
  width: number;
  height: number;
  margin: { top: number; right: number; bottom: number; left: number };
  minSpanMs?: number;
}): PlotLayout;

export function formatNumber(v: number | null | undefined): string;
