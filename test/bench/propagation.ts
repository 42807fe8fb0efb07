/**
 * Propagation benchmark (testbed: two network-namespace hosts, each with its own dockerd).
 *
 *   npm run bench:propagation -- [--smoke] [--containers 200] [--cli dist/cli/portolan.js]
 *
 * The aggregator runs in the root namespace, the real agent on host B. Containers are
 * started one after another on B; for each, the time from Docker's `start` event
 * (timeNano, B's engine) until, from host A, (a) the aggregator's DNS first answers with
 * B's address and (b) a waiting blocking query on /v1/health/service/<name> first returns
 * it. Then they are stopped one after another: from the `kill` event (the first signal of
 * `docker stop`, on which the agent withdraws) until DNS says NXDOMAIN and the blocking
 * query returns the empty list. Docker's own start/stop time is outside these spans.
 * The watching runs in one long-lived process inside A's namespace (support/propagation-probe.ts).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Testbed, type Host } from '../testbed/index.js';
import { defaultCli, startAggregatorProcess, type AggregatorProcess } from './support/aggregator-process.js';
import { JsonLines } from './support/json-lines.js';
import { ms, percentiles, report, type Figure } from './support/report.js';
import { benchPort, DockerEvents, runBenchContainer, startAgentOn } from './support/testbed-fleet.js';

const { values: v } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    containers: { type: 'string' },
    cli: { type: 'string', default: defaultCli },
  },
});
const count = v.containers !== undefined ? Number(v.containers) : v.smoke ? 5 : 200;
const GOAL_P99_MS = 50;
const probePath = fileURLToPath(new URL('./support/propagation-probe.ts', import.meta.url));

interface Spans {
  dns: number[];
  http: number[];
}

class Probe {
  constructor(
    readonly stdin: NodeJS.WritableStream,
    readonly out: JsonLines,
  ) {}

  static async start(a: Host, bed: Testbed, agg: AggregatorProcess): Promise<Probe> {
    const child = await a.spawn(
      process.execPath,
      ['--import', 'tsx', probePath, '--server', bed.gatewayAddress, '--dns-port', String(agg.dnsPort), '--http-port', String(agg.httpPort)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const probe = new Probe(child.stdin!, new JsonLines(child.stdout!));
    await probe.out.waitFor((l) => l.ready === true, 30_000, 'probe start');
    return probe;
  }

  /** Arms a watch; resolves once it holds the current index, with a promise of when each view saw it. */
  async arm(watch: { name: string; want: 'present' | 'absent'; address?: string; port?: number }): Promise<{ seen: Promise<{ dns: number; http: number }> }> {
    const already = this.out.lines.length;
    this.stdin.write(`${JSON.stringify(watch)}\n`);
    await this.out.waitFor((l) => l.armed === watch.name && this.out.lines.indexOf(l) >= already, 10_000, `arming ${watch.name}`);
    const seen = (via: string): Promise<number> =>
      this.out
        .waitFor((l) => (l.name === watch.name && l.want === watch.want && l.via === via) || (l.name === watch.name && 'error' in l), 10_000, `${watch.name} ${watch.want} via ${via}`)
        .then((l) => {
          if ('error' in l) throw new Error(`probe: ${String(l.error)}`);
          return l.at as number;
        });
    return { seen: Promise.all([seen('dns'), seen('http')]).then(([dns, http]) => ({ dns, http })) };
  }
}

async function measure(names: string[], step: (name: string, i: number) => Promise<{ event: number; dns: number; http: number }>): Promise<Spans> {
  const spans: Spans = { dns: [], http: [] };
  for (const [i, name] of names.entries()) {
    const { event, dns, http } = await step(name, i);
    spans.dns.push(dns - event);
    spans.http.push(http - event);
  }
  return spans;
}

function rows(what: string, spans: Spans): Figure[] {
  return (['dns', 'http'] as const).flatMap((via) => {
    const p = percentiles(spans[via]);
    const label = `${what} → ${via === 'dns' ? 'DNS answer' : 'blocking query'}`;
    return [
      { label: `${label} p50 / p95`, value: `${ms(p.p50)} / ${ms(p.p95)}` },
      { label: `${label} p99`, value: ms(p.p99), goal: `≤ ${GOAL_P99_MS} ms`, met: p.p99 <= GOAL_P99_MS },
      { label: `${label} max`, value: ms(p.max) },
    ];
  });
}

async function main(): Promise<void> {
  const bed = await Testbed.start({ hosts: ['a', 'b'] });
  let agg: AggregatorProcess | undefined;
  let events: DockerEvents | undefined;
  try {
    const [a, b] = [bed.host('a'), bed.host('b')];
    agg = await startAggregatorProcess({ cli: v.cli!, host: '0.0.0.0' });
    await startAgentOn(b, v.cli!, `ws://${bed.gatewayAddress}:${agg.httpPort}`);
    events = await DockerEvents.open(b);
    const probe = await Probe.start(a, bed, agg);
    const names = Array.from({ length: count }, (_, i) => `p${i}`);
    const ev = events;

    const started = await measure(names, async (name, i) => {
      const { seen } = await probe.arm({ name, want: 'present', address: b.address, port: benchPort(i) });
      const event = ev.at(name, 'start');
      await runBenchContainer(b, name, i);
      return { event: await event, ...(await seen) };
    });
    const stopped = await measure(names, async (name) => {
      const { seen } = await probe.arm({ name, want: 'absent' });
      const event = ev.at(name, 'kill');
      await b.docker(['stop', '-t', '5', name]);
      return { event: await event, ...(await seen) };
    });

    await report(
      'propagation',
      `bench:propagation ${count} containers on host B, seen from host A${v.smoke ? ' [smoke]' : ''}`,
      [...rows('start', started), ...rows('stop', stopped)],
      { count, started, stopped, start: { dns: percentiles(started.dns), http: percentiles(started.http) }, stop: { dns: percentiles(stopped.dns), http: percentiles(stopped.http) } },
      [
        'from the Docker event timestamp (start; kill = first signal of docker stop) to the first right answer; Docker\'s own start/stop time excluded',
        'aggregator, agent, both dockerds and the probe share the same cores; clocks are the same machine\'s',
      ],
    );
  } finally {
    events?.close();
    await agg?.stop();
    await bed.stop();
  }
}

await main();
