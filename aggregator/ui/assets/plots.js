/**
 * The fleet's plots on the overview, from GET /v1/portolan/ui/series (the aggregator's own
 * counters, sampled every intervalMs into a ring buffer of an hour): instances by health,
 * catalog changes per minute, DNS queries per second and DNS answer time. Laid out by
 * chart.js, drawn as SVG; colours come from style.css classes (the CSP allows no inline style).
 */
import { getJson } from './api.js';
import { formatNumber, layoutPlot } from './chart.js';
import { el } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const MARGIN = { top: 8, right: 12, bottom: 20, left: 48 };
/** The series are fetched again every intervalMs, the aggregator's sampling, but not more often than this. */
const MIN_REFRESH_MS = 1000;
const RETRY_MS = 10_000;
/** A lone first sample still gets a minute of axis, so it is a point on a plot and not a plot of a point. */
const MIN_SPAN_MS = 60_000;

const PLOTS = [
  {
    id: 'health',
    title: 'Instances by health',
    unit: 'instances',
    stacked: true,
    series: [
      { key: 'passing', value: (s) => s.passing, reading: (v) => `${formatNumber(v)} passing` },
      { key: 'warning', value: (s) => s.warning, reading: (v) => `${formatNumber(v)} warning` },
      { key: 'critical', value: (s) => s.critical, reading: (v) => `${formatNumber(v)} critical` },
    ],
  },
  {
    id: 'changes',
    title: 'Catalog changes',
    unit: 'per minute',
    series: [{ key: 'changes', value: (s, ms) => (s.changes * 60_000) / ms, reading: (v) => `${formatNumber(v)} /min` }],
  },
  {
    id: 'dns-rate',
    title: 'DNS queries',
    unit: 'per second',
    series: [{ key: 'queries', value: (s, ms) => (s.dnsQueries * 1000) / ms, reading: (v) => `${formatNumber(v)} /s` }],
  },
  {
    id: 'dns-time',
    title: 'DNS answer time',
    unit: 'ms',
    series: [
      { key: 'p50', value: (s) => s.dnsP50Ms, reading: (v) => `p50 ${formatNumber(v)} ms` },
      { key: 'p99', value: (s) => s.dnsP99Ms, reading: (v) => `p99 ${formatNumber(v)} ms` },
    ],
  },
];

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeLabel(t, step) {
  return new Date(t).toLocaleTimeString([], { hourCycle: 'h23', hour: '2-digit', minute: '2-digit', ...(step < 60_000 && { second: '2-digit' }) });
}

export class FleetPlots {
  #status;
  #figures;
  #series = { intervalMs: 0, samples: [] };
  #timer;
  #running = false;

  constructor(root) {
    this.#status = el('p', 'muted plots-status');
    this.#figures = PLOTS.map((plot) => {
      const figure = el('figure', 'plot');
      figure.dataset.plot = plot.id;
      const readings = el('span', 'readings');
      const image = svg('svg', { class: 'plot-svg', role: 'img', 'aria-label': `${plot.title}, ${plot.unit}, over the last hour` });
      figure.append(el('figcaption', '', el('span', 'plot-title', plot.title), readings), image);
      return { plot, figure, readings, image };
    });
    root.append(...this.#figures.map((f) => f.figure), this.#status);
    new ResizeObserver(() => this.draw()).observe(root);
  }

  /** Fetches now (the token may just have been given) and draws every intervalMs while the overview is shown. */
  start() {
    this.#running = true;
    void this.#poll();
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  async #poll() {
    let next = RETRY_MS;
    try {
      this.#series = await getJson('/v1/portolan/ui/series');
      this.#status.textContent = '';
      next = Math.max(MIN_REFRESH_MS, this.#series.intervalMs);
    } catch (err) {
      this.#status.textContent = `Plots unavailable: ${err.message}`;
    }
    if (!this.#running) return;
    this.draw();
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#poll(), next);
  }

  draw() {
    const { samples, intervalMs } = this.#series;
    const times = samples.map((s) => s.t);
    for (const { plot, figure, readings, image } of this.#figures) {
      // The box's size is style.css's (smaller on a phone); the drawing is made to fit it.
      const { clientWidth: width, clientHeight: height } = image;
      if (width === 0) continue;
      const series = plot.series.map((s) => ({ key: s.key, values: samples.map((sample) => s.value(sample, intervalMs)) }));
      const layout = layoutPlot({ times, series, stacked: plot.stacked, width, height, margin: MARGIN, minSpanMs: MIN_SPAN_MS });
      figure.dataset.samples = String(samples.length);
      image.setAttribute('viewBox', `0 0 ${width} ${height}`);
      image.replaceChildren(...this.#axes(plot, layout, width, height), ...this.#shapes(plot, layout));
      if (samples.length === 0) image.append(svg('text', { class: 'no-data', x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'No samples yet'));
      readings.replaceChildren(
        ...plot.series.map((s, i) => {
          const value = series[i].values.findLast((v) => v !== null);
          return el('span', `reading series-${s.key}`, el('span', 'swatch'), s.reading(value ?? null));
        }),
      );
    }
  }

  #axes(plot, layout, width, height) {
    const left = MARGIN.left;
    const bottom = height - MARGIN.bottom;
    const nodes = [];
    for (const { value, y } of layout.yTicks) {
      nodes.push(svg('line', { class: 'grid', x1: left, x2: width - MARGIN.right, y1: y, y2: y }));
      nodes.push(svg('text', { class: 'tick', x: left - 6, y: y + 4, 'text-anchor': 'end' }, formatNumber(value)));
    }
    for (const { t, x } of layout.xTicks) {
      nodes.push(svg('text', { class: 'tick', x, y: bottom + 14, 'text-anchor': 'middle' }, timeLabel(t, layout.timeStep)));
    }
    const middle = (MARGIN.top + bottom) / 2;
    nodes.push(svg('text', { class: 'unit', x: 0, y: 0, transform: `translate(12 ${middle}) rotate(-90)`, 'text-anchor': 'middle' }, plot.unit));
    return nodes;
  }

  #shapes(plot, layout) {
    const nodes = [];
    for (const shape of layout.shapes) {
      const kind = plot.stacked ? 'area' : 'line';
      nodes.push(svg('path', { class: `${kind} series-${shape.key}`, d: shape.d }));
      if (shape.last && !plot.stacked) nodes.push(svg('circle', { class: `marker series-${shape.key}`, cx: shape.last.x, cy: shape.last.y, r: 3 }));
    }
    return nodes;
  }
}
