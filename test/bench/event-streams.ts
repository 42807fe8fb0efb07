/**
 * Event streams that never read (no Docker): what they cost the aggregator, and whether it lets go.
 *
 *   node --import tsx test/bench/event-streams.ts -- [--smoke] [--streams 40] [--hosts 100] [--services 50]
 *                                                     [--cli dist/cli/portolan.js]
 *
 * An aggregator process carries a simulated fleet (support/sim-fleet.ts; 5,000 instances by
 * default). `--streams` raw connections each ask for /v1/portolan/events and then read
 * nothing, while one ordinary client reads its whole catalog. Measured: the aggregator's RSS
 * and live heap (after a full GC) before, while the streams are held, and once it has dropped
 * them (a stream whose socket takes nothing from one 15 s heartbeat to the next is closed).
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAggregatorProcess } from './support/aggregator-process.js';
import { waitForNodes } from './support/catalog-client.js';
import { fleetArgs } from './support/fleet-args.js';
import { mb, ms, report } from './support/report.js';
import { SimulatedFleet } from './support/sim-fleet.js';
import { until } from '../support/until.js';

const args = fleetArgs({ streams: { type: 'string' } });
const { smoke } = args;
const shape = { hosts: args.pick('hosts', 100, 100), servicesPerHost: args.pick('services', 50, 50), names: args.pick('names', 500, 100) };
const streamCount = args.pick('streams', 40, 4);

async function openStreams(http: string): Promise<number> {
  const res = await fetch(`http://${http}/metrics`);
  return Number(/^portolan_http_event_streams (\d+)$/m.exec(await res.text())?.[1] ?? NaN);
}

/** A client that asks for the stream and never reads a byte of it. */
function idleStream(port: number): net.Socket {
  const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /v1/portolan/events HTTP/1.1\r\nHost: bench\r\n\r\n'));
  socket.pause();
  socket.on('error', () => {});
  return socket;
}

/** Reads the stream until its first event has arrived whole: its size and how long it took. */
async function readCatalog(http: string): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  const controller = new AbortController();
  const res = await fetch(`http://${http}/v1/portolan/events`, { signal: controller.signal });
  const reader = res.body!.getReader();
  let bytes = 0;
  let tail = '';
  for (;;) {
    const { value } = await reader.read();
    if (!value) throw new Error('stream ended before its catalog');
    bytes += value.length;
    tail = (tail + Buffer.from(value).toString('latin1')).slice(-2);
    if (tail === '\n\n') break;
  }
  controller.abort();
  return { bytes, ms: performance.now() - started };
}

async function main(): Promise<void> {
  const agg = await startAggregatorProcess({ cli: args.cli, args: ['--reap-after', '10m'] });
  const fleet = new SimulatedFleet(shape, agg.http);
  const sockets: net.Socket[] = [];
  try {
    await fleet.connectAll();
    await waitForNodes(agg.http, shape.hosts, 60_000);
    const memBefore = await agg.memory();
    sockets.push(...Array.from({ length: streamCount }, () => idleStream(agg.httpPort)));
    await until(async () => (await openStreams(agg.http)) === streamCount, 120_000, `${streamCount} streams open`);
    const catalog = await readCatalog(agg.http);
    await sleep(2000);
    const memHeld = await agg.memory();
    const heldSince = performance.now();
    // An aggregator that never drops them (an older build, say) is reported, not waited for.
    const gone = await until(async () => (await openStreams(agg.http)) === 0, 60_000).then(() => true, () => false);
    const droppedAfter = gone ? performance.now() - heldSince : NaN;
    await sleep(500);
    const memAfter = await agg.memory();
    const metrics = await (await fetch(`http://${agg.http}/metrics`)).text();
    const dropped = Number(/^portolan_http_event_streams_dropped_total\{reason="stalled"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    const each = (key: 'rss' | 'heapUsed'): string => `${mb(memHeld[key])} (${((memHeld[key] - memBefore[key]) / streamCount / 2 ** 20).toFixed(2)} MB a stream)`;

    await report(
      'event-streams',
      `bench:event-streams ${streamCount} streams that never read, ${shape.hosts * shape.servicesPerHost} instances${smoke ? ' [smoke]' : ''}`,
      [
        { label: 'catalog frame, read by one ordinary client', value: `${mb(catalog.bytes)} in ${ms(catalog.ms)}` },
        { label: 'aggregator RSS before the streams', value: mb(memBefore.rss) },
        { label: 'aggregator RSS while held', value: each('rss') },
        { label: 'aggregator RSS after they were dropped', value: mb(memAfter.rss) },
        { label: 'aggregator live heap before / held / after', value: `${mb(memBefore.heapUsed)} / ${each('heapUsed')} / ${mb(memAfter.heapUsed)}` },
        { label: 'streams dropped as stalled', value: `${dropped} of ${streamCount}, ${gone ? `${ms(droppedAfter)} after they were held` : 'none gone after 60 s'}` },
      ],
      { shape, streamCount, catalog, memBefore, memHeld, memAfter, dropped, droppedAfterMs: gone ? droppedAfter : null },
      ['the idle clients and the reading one run in this process, the simulated fleet too: all share the cores with the aggregator'],
    );
    if (dropped !== streamCount) process.exitCode = 1;
  } finally {
    sockets.forEach((s) => s.destroy());
    fleet.stop();
    await agg.stop();
  }
}

await main();
