import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bandPath, formatNumber, layoutPlot, linePath, scale, stack, timeTicks, valueTicks } from '../../aggregator/ui/assets/chart.js';

describe('UI plots: scales and axis ticks', () => {
  it('scale maps the domain linearly onto the range (inverted for a y axis), an empty domain onto its start', () => {
    const y = scale([0, 100], [110, 10]);
    assert.deepEqual([y(0), y(50), y(100)], [110, 60, 10]);
    assert.equal(scale([5, 5], [0, 300])(5), 0);
  });

  it('value ticks are steps of 1, 2 or 5 × 10^k from 0 to the lowest round top covering the maximum', () => {
    assert.deepEqual(valueTicks(5000), { top: 5000, ticks: [0, 1000, 2000, 3000, 4000, 5000] });
    assert.deepEqual(valueTicks(5001), { top: 6000, ticks: [0, 2000, 4000, 6000] });
    assert.deepEqual(valueTicks(7), { top: 8, ticks: [0, 2, 4, 6, 8] });
    assert.deepEqual(valueTicks(0.3), { top: 0.3, ticks: [0, 0.1, 0.2, 0.3] });
    assert.deepEqual(valueTicks(0.7), { top: 0.8, ticks: [0, 0.2, 0.4, 0.6, 0.8] });
  });

  it('an axis with nothing to show still runs from 0 to 1', () => {
    assert.deepEqual(valueTicks(0), { top: 1, ticks: [0, 1] });
    assert.deepEqual(valueTicks(Number.NaN), { top: 1, ticks: [0, 1] });
  });

  it('time ticks fall on round clock times, coarser the longer the span', () => {
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 7);
    const minute = timeTicks(t0, t0 + 60_000);
    assert.equal(minute.step, 15_000);
    assert.deepEqual(minute.ticks.map((t) => new Date(t).toISOString().slice(11, 19)), ['12:00:15', '12:00:30', '12:00:45', '12:01:00']);
    const hour = timeTicks(t0, t0 + 3_600_000);
    assert.equal(hour.step, 15 * 60_000);
    assert.deepEqual(hour.ticks.map((t) => new Date(t).toISOString().slice(11, 16)), ['12:15', '12:30', '12:45', '13:00']);
  });
});

describe('UI plots: path data', () => {
  it('a line moves to its first point and draws to the next; a null gap starts a new segment', () => {
    assert.equal(linePath([[0, 10], [5, 20.04], [10, null], [15, 5], [20, 6]]), 'M0,10L5,20M15,5L20,6');
    assert.equal(linePath([[0, null]]), '');
  });

  it('a band runs along its top, then back along its bottom, closed', () => {
    assert.equal(bandPath([0, 10], [100, 90], [50, 40]), 'M0,50L10,40L10,90L0,100Z');
    assert.equal(bandPath([], [], []), '');
  });

  it('stacked series sit each on the sum of those before it (a null counts as 0)', () => {
    assert.deepEqual(stack([{ values: [3, 4] }, { values: [1, null] }, { values: [2, 2] }]), [
      { lows: [0, 0], highs: [3, 4] },
      { lows: [3, 4], highs: [4, 4] },
      { lows: [4, 4], highs: [6, 6] },
    ]);
  });

  it('a plot spans its samples in time and 0..a round top in value, and marks the last reading', () => {
    const margin = { top: 10, right: 0, bottom: 10, left: 0 };
    const layout = layoutPlot({ times: [0, 10_000, 20_000], series: [{ key: 'q', values: [0, 5, 10] }], width: 200, height: 120, margin });
    assert.deepEqual(layout.shapes, [{ key: 'q', d: 'M0,110L100,60L200,10', last: { x: 200, y: 10 } }]);
    assert.deepEqual(layout.yTicks.map((t) => t.value), [0, 2, 4, 6, 8, 10]);
    assert.equal(layout.yTicks.at(-1)!.y, 10);
  });

  it('a stacked plot is scaled to the sum of its layers; a lone sample still has a time span to sit in', () => {
    const margin = { top: 0, right: 0, bottom: 0, left: 0 };
    const layout = layoutPlot({
      times: [60_000],
      series: [{ key: 'passing', values: [6] }, { key: 'critical', values: [2] }],
      stacked: true,
      width: 100,
      height: 80,
      margin,
      minSpanMs: 60_000,
    });
    assert.deepEqual(layout.shapes.map((s) => s.d), ['M100,20L100,80Z', 'M100,0L100,20Z']);
    assert.deepEqual(layout.xTicks, [{ t: 0, x: 0 }, { t: 30_000, x: 50 }, { t: 60_000, x: 100 }]);
    assert.deepEqual(layout.shapes[1]!.last, { x: 100, y: 0 });
  });

  it('a narrow plot gets fewer time labels, so they do not overlap', () => {
    const margin = { top: 0, right: 0, bottom: 0, left: 0 };
    const times = [0, 3_600_000];
    const series = [{ key: 'q', values: [1, 1] }];
    assert.equal(layoutPlot({ times, series, width: 400, height: 50, margin }).xTicks.length, 7);
    assert.deepEqual(layoutPlot({ times, series, width: 120, height: 50, margin }).xTicks.map((t) => t.t), [0, 1_800_000, 3_600_000]);
  });

  it('a line with no reading at all (no DNS query yet) has no path and no last point', () => {
    const layout = layoutPlot({ times: [0, 1000], series: [{ key: 'p99', values: [null, null] }], width: 10, height: 10, margin: { top: 0, right: 0, bottom: 0, left: 0 } });
    assert.deepEqual(layout.shapes, [{ key: 'p99', d: '', last: undefined }]);
  });
});

describe('UI plots: readings', () => {
  it('numbers read with grouped thousands and fewer decimals the larger they are; none is a dash', () => {
    assert.deepEqual([5000, 123.4, 12.34, 0.256, 3, null].map(formatNumber), ['5,000', '123', '12.3', '0.26', '3', '–']);
  });
});
