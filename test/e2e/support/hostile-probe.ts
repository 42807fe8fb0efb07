import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CliProcess } from './cli.js';
import type { Cluster } from './cluster.js';
import { getJson } from './faults.js';
import type { ProbeRunnerReport } from './hostile-probe-runner.js';

const runner = fileURLToPath(new URL('./hostile-probe-runner.ts', import.meta.url));

/** The bound on DNS while under attack. */
export const DNS_P99_MAX_MS = 50;
/**
 * How long the probe keeps watching after an attack: a stall the attack caused shows as
 * cut agents only once suspect-after (3 s) has passed and the silence check (every 250 ms) ran.
 */
const WATCH_AFTER_MS = 4000;

/** Aggregator log lines that mean it dropped or withdrew an agent's node. */
const AGGREGATOR_CUTS = ['agent missed heartbeats', 'agent connection lost; node suspect', 'agent did not come back; node reaped', 'node name claimed by a newer connection'];
/** Agent log lines that mean its connection to the aggregator ended. */
const AGENT_CUTS = ['aggregator connection closed; reconnecting', 'aggregator did not answer a ping; dropping the connection'];

export interface ProbeTarget {
  httpPort: number;
  dnsPort: number;
  aggregator: CliProcess;
  /** Real agents that must keep their connection. */
  agents: readonly CliProcess[];
  /** A service registered by the agents: `<service>.service.consul` must keep resolving, its instances passing. */
  service: string;
  /** Node names the attack itself uses, whose refusal is expected (the others must not be cut). */
  attackerNodes?: readonly string[];
}

export interface ProbeReport {
  dnsP50Ms: number;
  dnsP99Ms: number;
  dns: ProbeRunnerReport['dns'];
  httpP99Ms: number;
  http: ProbeRunnerReport['http'];
  rss: ProbeRunnerReport['rss'];
  /** What the aggregator process wrote to stdout and stderr while the probe ran. */
  aggregatorLogBytes: number;
  /** Log lines (aggregator's and agents') that say a protected agent was cut. */
  cuts: string[];
  passingAtStart: number;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Watches discovery while an attack runs: DNS latency and answers, the registered instances
 * in `?passing`, cuts in the aggregator's and agents' logs, the aggregator's RSS and log
 * volume. Start it before the attack; `assertHealthy` after it. It stops with the test that
 * started it, also when the test fails before `assertHealthy`.
 */
export class HostileProbe {
  private constructor(
    private readonly target: ProbeTarget,
    private readonly child: ChildProcess,
    private readonly passingIds: readonly string[],
    private readonly logsFrom: { aggregator: number; agents: number[] },
    private readonly logBytes: ByteCount,
  ) {}

  static async start(t: TestContext, target: ProbeTarget): Promise<HostileProbe> {
    // Marked before the first await: a line the attack caused cannot slip in before the mark.
    const logsFrom = { aggregator: target.aggregator.logs.length, agents: target.agents.map((a) => a.logs.length) };
    const logBytes = countOutput(target.aggregator);
    t.after(() => logBytes.stop());
    const { body } = await getJson<Array<{ Service: { ID: string } }>>(target.httpPort, `/v1/health/service/${target.service}?passing`);
    const ids = body.map((e) => e.Service.ID);
    assert.ok(ids.length > 0, `${target.service} has passing instances before the attack`);
    const child = fork(runner, ['--dns-port', String(target.dnsPort), '--http-port', String(target.httpPort), '--service', target.service, '--pid', String(target.aggregator.child.pid), '--ids', JSON.stringify(ids)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    t.after(() => void (child.exitCode === null && child.kill()));
    const [ready] = (await once(child, 'message', { signal: AbortSignal.timeout(10_000) })) as [unknown];
    assert.equal(ready, 'ready');
    return new HostileProbe(target, child, ids, logsFrom, logBytes);
  }

  /** Stops measuring `afterMs` from now and returns what was seen. */
  async finish(afterMs = WATCH_AFTER_MS): Promise<ProbeReport> {
    await new Promise((r) => setTimeout(r, afterMs));
    const reported = once(this.child, 'message') as Promise<[ProbeRunnerReport]>;
    this.child.send('stop');
    const [r] = await reported;
    await once(this.child, 'exit').catch(() => undefined);
    this.logBytes.stop();
    return {
      dnsP50Ms: round(percentile(r.dns.latenciesMs, 50)),
      dnsP99Ms: round(percentile(r.dns.latenciesMs, 99)),
      dns: r.dns,
      httpP99Ms: round(percentile(r.http.latenciesMs, 99)),
      http: r.http,
      rss: { firstMb: round(r.rss.firstMb), maxMb: round(r.rss.maxMb), lastMb: round(r.rss.lastMb) },
      aggregatorLogBytes: this.logBytes.bytes,
      cuts: this.#cuts(),
      passingAtStart: this.passingIds.length,
    };
  }

  /**
   * Finishes and asserts the conditions for the whole time the probe ran: DNS p99
   * under 50 ms (or `dnsP99MaxMs`) with every answer right, every instance still passing, no agent cut, the
   * aggregator alive, and its RSS peak at most `rssGrowthMaxMb` over where it started.
   */
  async assertHealthy(o: { rssGrowthMaxMb: number; dnsP99MaxMs?: number; afterMs?: number; diagnostic?: (s: string) => void }): Promise<ProbeReport> {
    const r = await this.finish(o.afterMs);
    o.diagnostic?.(describeReport(r));
    const agg = this.target.aggregator.child;
    assert.ok(agg.exitCode === null && agg.signalCode === null, 'the aggregator is still running');
    assert.deepEqual(r.cuts, [], 'no agent was cut');
    assert.deepEqual(r.dns.bad, [], 'every DNS answer was NOERROR with an A record');
    const p99Max = o.dnsP99MaxMs ?? DNS_P99_MAX_MS;
    assert.ok(r.dnsP99Ms < p99Max, `DNS p99 ${r.dnsP99Ms} ms < ${p99Max} ms (${r.dns.lost} of ${r.dns.sent} unanswered in 1 s)`);
    assert.deepEqual(r.http.failures, [], 'every instance stayed in ?passing and every poll was answered');
    const growth = r.rss.maxMb - r.rss.firstMb;
    assert.ok(growth <= o.rssGrowthMaxMb, `aggregator RSS peak ${r.rss.maxMb} MB is ${round(growth)} MB over the ${r.rss.firstMb} MB at the start (bound ${o.rssGrowthMaxMb} MB)`);
    return r;
  }

  #cuts(): string[] {
    const exempt = new Set(this.target.attackerNodes ?? []);
    const aggregator = this.target.aggregator.logs
      .slice(this.logsFrom.aggregator)
      .filter((l) => AGGREGATOR_CUTS.includes(String(l.msg)) && l.node !== undefined && !exempt.has(String(l.node)));
    const agents = this.target.agents.flatMap((a, i) => a.logs.slice(this.logsFrom.agents[i]).filter((l) => AGENT_CUTS.includes(String(l.msg))));
    return [...aggregator, ...agents].map((l) => JSON.stringify(l).slice(0, 300));
  }
}

interface ByteCount {
  readonly bytes: number;
  stop(): void;
}

/** Counts the bytes a CLI process writes to stdout and stderr from now until stopped. */
function countOutput(p: CliProcess): ByteCount {
  const count = { bytes: 0, stop };
  const add = (chunk: Buffer): void => void (count.bytes += chunk.length);
  p.child.stdout!.on('data', add);
  p.child.stderr!.on('data', add);
  function stop(): void {
    p.child.stdout!.off('data', add);
    p.child.stderr!.off('data', add);
  }
  return count;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** One line with every figure, for t.diagnostic. */
export function describeReport(r: ProbeReport): string {
  return (
    `DNS p50 ${r.dnsP50Ms} ms p99 ${r.dnsP99Ms} ms, worst ${r.dns.worst.ms} ms at +${r.dns.worst.atMs} ms (${r.dns.answered}/${r.dns.sent} answered, ${r.dns.lost} lost); ` +
    `?passing polls ${r.http.polls}, p99 ${r.httpP99Ms} ms, ${r.http.failures.length} failed (${r.passingAtStart} instances); ` +
    `aggregator RSS ${r.rss.firstMb} → peak ${r.rss.maxMb} → ${r.rss.lastMb} MB; log ${r.aggregatorLogBytes} bytes; cuts ${r.cuts.length}`
  );
}

/** The probe's target for a test cluster: its aggregator and every real agent it started. */
export function clusterTarget(cluster: Cluster, service: string, attackerNodes: readonly string[] = []): ProbeTarget {
  return { httpPort: cluster.httpPort, dnsPort: cluster.dnsPort, aggregator: cluster.aggregator, agents: [...cluster.agents.values()], service, attackerNodes };
}
