/**
 * The geometry of the page's plots: scales, axis ticks and SVG path data. No DOM here, so
 * it runs in node's tests as it does in the page (plots.js draws what this lays out).
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
/** Steps a time axis may tick at: round clock times at every zoom from a minute to an hour. */
const TIME_STEPS = [10 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, 60 * MINUTE];

const TIME_LABEL_PX = 56;

/** Coordinates are written with at most one decimal: finer than a pixel, and short paths. */
const round = (v) => Math.round(v * 10) / 10;

/** The linear map from the domain [d0, d1] onto [r0, r1]; an empty domain maps everything to r0. */
export function scale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/**
 * A value axis from 0 up to at least `max` in steps of 1, 2 or 5 × 10^k: the lowest top that
 * takes at most `count` + 1 steps. An axis with nothing to show (max 0) still goes up to 1,
 * so it is drawn and not collapsed.
 */
export function valueTicks(max, count = 4) {
  if (!(max > 0)) return { top: 1, ticks: [0, 1] };
  const magnitude = 10 ** Math.floor(Math.log10(max / count));
  let best;
  for (const step of [1, 2, 5, 10, 20].map((m) => m * magnitude)) {
    const steps = Math.ceil(max / step - 1e-9);
    if (steps <= count + 1 && (best === undefined || steps * step < best.steps * best.step - 1e-9)) best = { step, steps };
  }
  // Multiplying, not adding, keeps 0.1 + 0.2 style drift out of the labels.
  const ticks = Array.from({ length: best.steps + 1 }, (_, i) => Number((i * best.step).toPrecision(12)));
  return { top: ticks[ticks.length - 1], ticks };
}

/** Round clock times within [t0, t1], at most about `count` of them; `step` tells a label's precision. */
export function timeTicks(t0, t1, count = 5) {
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= count) ?? TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { step, ticks };
}

/** Path data of a line through [x, y] points; a y of null (no data then) breaks the line. */
export function linePath(points) {
  let d = '';
  let drawing = false;
  for (const [x, y] of points) {
    if (y === null || y === undefined) {
      drawing = false;
      continue;
    }
    d += `${drawing ? 'L' : 'M'}${round(x)},${round(y)}`;
    drawing = true;
  }
  return d;
}

/** Path data of the closed band between two lines over the same xs (a stacked area's layer). */
export function bandPath(xs, lows, highs) {
  if (xs.length === 0) return '';
  const top = xs.map((x, i) => `${i === 0 ? 'M' : 'L'}${round(x)},${round(highs[i])}`).join('');
  const bottom = xs.map((x, i) => `L${round(x)},${round(lows[i])}`).reverse().join('');
  return `${top}${bottom}Z`;
}

/** Each series' values stacked on the ones before it: per series, its [lows, highs]. */
export function stack(series) {
  const base = series[0]?.values.map(() => 0) ?? [];
  return series.map(({ values }) => {
    const lows = [...base];
    values.forEach((v, i) => (base[i] += v ?? 0));
    return { lows, highs: [...base] };
  });
}

/**
 * Everything a plot draws, in pixels of a `width` × `height` box with `margin` for the axes:
 * `series` is [{ key, values }] with a value (or null) per time in `times`; `stacked` layers
 * them as areas, else each is a line. The time axis spans the samples (at least `minSpanMs`,
 * ending at the last), the value axis starts at 0.
 */
export function layoutPlot({ times, series, stacked = false, width, height, margin, minSpanMs = 0 }) {
  const t1 = times.length ? times[times.length - 1] : 0;
  const t0 = Math.min(times[0] ?? t1, t1 - minSpanMs);
  const x = scale([t0, t1], [margin.left, width - margin.right]);
  const layers = stacked ? stack(series) : series.map(({ values }) => ({ lows: undefined, highs: values }));
  const max = Math.max(0, ...layers.flatMap((l) => l.highs.filter((v) => v !== null && v !== undefined)));
  const { top, ticks } = valueTicks(max);
  const y = scale([0, top], [height - margin.bottom, margin.top]);
  const xs = times.map(x);
  const shapes = layers.map((layer, i) => {
    const ys = layer.highs.map((v) => (v === null || v === undefined ? null : y(v)));
    const d = stacked ? bandPath(xs, layer.lows.map(y), ys) : linePath(xs.map((px, j) => [px, ys[j]]));
    return { key: series[i].key, d, last: lastPoint(xs, ys) };
  });
  // A clock label takes about TIME_LABEL_PX: a narrow plot (a phone's) gets fewer of them.
  const time = times.length ? timeTicks(t0, t1, Math.max(2, Math.floor((width - margin.left - margin.right) / TIME_LABEL_PX))) : { step: 0, ticks: [] };
  return {
    shapes,
    yTicks: ticks.map((value) => ({ value, y: round(y(value)) })),
    xTicks: time.ticks.map((t) => ({ t, x: round(x(t)) })),
    timeStep: time.step,
  };
}

/** The rightmost point with a value, where a plot marks its last reading; undefined if none. */
function lastPoint(xs, ys) {
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null) return { x: round(xs[i]), y: round(ys[i]) };
  return undefined;
}

/** A reading as people read it: grouped thousands, more decimals the smaller it is. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const digits = Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}
