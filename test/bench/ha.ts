/**
 * High-availability benchmark (no Docker): two aggregators on one etcd cluster, side by side
 * with a memory-store aggregator as the reference, in the same run.
 *
 *   npm run bench:ha -- [--smoke] [--hosts 1000] [--services 50] [--names 2000] [--members 3]
 *                       [--rate 100] [--churn-seconds 30] [--dns-seconds 10] [--dns-rounds 2]
 *                       [--watchers N] [--dns-names 20] [--watch-seconds 10] [--cli dist/cli/portolan.js]
 *                       [--node-flags "..."]   (--cli cli/portolan.ts runs the source through tsx, no build)
 *
 * Every aggregator is the built CLI in its own process; etcd is a real N-member cluster on
 * loopback (test/support/etcd-cluster.ts). This process is the load generator: each simulated
 * host runs the real agent uplink (support/ha-fleet.ts) given both etcd-backed aggregators'
 * URLs, so the fleet splits between them at random and fails over as real agents do.
 *
 * Phases:
 *   1. memory reference: the fleet (its own copy) registers with one memory-store aggregator M;
 *      time until M holds every node, its RSS.
 *   2. etcd: a second copy of the fleet registers over A and B (both --store etcd://…); time
 *      until every node is stored and visible on both; etcd write operations and DB size for
 *      the load; A's and B's RSS (at hosts × services instances).
 *   3. DNS: dnsperf against M, A and B in turn (--dns-rounds times), fleets idle; A/M and B/M.
 *   4. churn at --rate changes/s: on M (change → blocking query on M: the reference), then on
 *      the hosts homed on A, each timed until a blocking query on B shows it.
 *   5. failover: kill -9 A while B is watched (a blocking ?passing query per name, and DNS
 *      every 20 ms for --dns-names names in a separate process); each of A's hosts is timed
 *      until its uplink has registered with B; any instance that leaves ?passing or DNS on B
 *      is a false withdrawal. Watching lasts --watch-seconds after the kill (past the lease TTL).
 * --smoke: 20 hosts × 5 services, 1 etcd member, short phases; the figures are not judged.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { seeded } from '../support/random.js';
import { startAggregatorProcess, type AggregatorMemory, type AggregatorProcess } from './support/aggregator-process.js';
import { countInstances, getJson, waitForNodes } from './support/catalog-client.js';
import { dnsperf, writeQueries, type DnsperfResult } from './support/dnsperf.js';
import { fleetArgs } from './support/fleet-args.js';
import { etcdCounters, etcdDelta, histogramQuantile } from './support/ha-etcd.js';
import { HaFleet } from './support/ha-fleet.js';
import type { Change } from './support/sim-fleet.js';
import { JsonLines } from './support/json-lines.js';
import { cpuPercent } from './support/proc-stats.js';
import { mb, ms, percentiles, report, type Figure } from './support/report.js';

const args = fleetArgs({
  members: { type: 'string' },
  rate: { type: 'string', default: '100' },
  'churn-seconds': { type: 'string' },
  'dns-seconds': { type: 'string' },
  'dns-rounds': { type: 'string' },
  'dns-names': { type: 'string' },
  'watch-seconds': { type: 'string' },
  'idle-seconds': { type: 'string' },
  'node-flags': { type: 'string' },
});
const { shape, smoke } = args;
const members = args.pick('members', 3, 1);
const rate = Number(args.value('rate'));
const churnSeconds = args.pick('churn-seconds', 30, 3);
const dnsSeconds = args.pick('dns-seconds', 10, 1);
const dnsRounds = args.pick('dns-rounds', 2, 1);
const dnsNames = args.pick('dns-names', 20, 5);
const watchSeconds = args.pick('watch-seconds', 10, 5);
const idleSeconds = args.pick('idle-seconds', 5, 1);
/** Options for the aggregators' node; a .ts CLI (cli/portolan.ts: the source, no build) runs through tsx. */
const nodeFlags = [...(args.cli.endsWith('.ts') ? ['--import', 'tsx'] : []), ...String(args.value('node-flags') ?? '').split(' ').filter(Boolean)];
/** Blocking watchers: one per name unless --watchers says fewer. */
const watcherCount = Math.min(shape.names, typeof args.value('watchers') === 'string' ? Number(args.value('watchers')) : shape.names);
for (const [flag, v] of Object.entries({ hosts: shape.hosts, services: shape.servicesPerHost, names: shape.names, members, rate, 'churn-seconds': churnSeconds, 'dns-seconds': dnsSeconds, 'dns-rounds': dnsRounds, 'dns-names': dnsNames, 'watch-seconds': watchSeconds, watchers: watcherCount })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${flag}: expected a positive number, got ${String(v)}`);
}
if (shape.names > shape.hosts * shape.servicesPerHost) throw new Error(`--names ${shape.names} is more than the ${shape.hosts * shape.servicesPerHost} instances: some names would have none`);

/** After churn, for the last changes to reach their watchers. */
const graceMs = smoke ? 1000 : 2000;
const GOALS = { dnsRatio: 0.95, loadS: 15, churnP99Ms: 100, failoverP99S: 3, falseWithdrawals: 0, rssMb: 350 };
const LOAD_TIMEOUT_MS = smoke ? 30_000 : 180_000;
const dnsWatchPath = fileURLToPath(new URL('./support/ha-dns-watch.ts', import.meta.url));
const watchChildPath = fileURLToPath(new URL('./support/ha-watch-child.ts', import.meta.url));

const random = seeded(args.seed);
const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));
const uptime = (): string => execFileSync('uptime').toString().trim();
const began = performance.now();
const phase = (what: string): void => console.error(`bench:ha +${((performance.now() - began) / 1000).toFixed(1)} s: ${what}`);

function sample<T>(items: readonly T[], n: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

function withTimeout<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Instances listed by /v1/health/service/<name>?passing over all names (a few requests at a time). */
async function countPassing(http: string, names: readonly string[], parallel = 16): Promise<number> {
  let total = 0;
  const queue = [...names];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
        const found = await getJson<unknown[]>(http, `/v1/health/service/${name}?passing`);
        total += found.length; // not `total += await …`: that reads total before the await
      }
    }),
  );
  return total;
}

/** The X-Consul-Index an aggregator answers for the node list (etcd revisions: equal on A and B once both are caught up). */
async function catalogIndex(http: string): Promise<number> {
  const res = await fetch(`http://${http}/v1/catalog/nodes`);
  await res.arrayBuffer();
  return Number(res.headers.get('x-consul-index'));
}

const label = (agg: AggregatorProcess): string => `ws://${agg.http}`;

/** What support/ha-watch-child.ts reports when stopped. */
interface WatchResult {
  latencies: number[];
  unseen: number;
  withdrawn: number;
  withdrawnSample: string[];
  firstWithdrawalAt: number | null;
  answers: number;
  errors: number;
}

/** Blocking ?passing watchers on one aggregator, in a child process (support/ha-watch-child.ts). */
interface Watch {
  expect(c: Change): void;
  /** Stops them (once) and returns what they saw. */
  stop(): Promise<WatchResult>;
}

async function startWatch(http: string, names: readonly string[], expected?: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<Watch> {
  const child = spawn(process.execPath, ['--import', 'tsx', watchChildPath, '--http', http], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = new JsonLines(child.stdout!);
  const send = (o: object): void => void child.stdin!.write(`${JSON.stringify(o)}\n`);
  send({ watch: names, ...(expected ? { expected: Object.fromEntries([...expected].map(([n, ids]) => [n, [...ids.keys()]])) } : {}) });
  await out.waitFor((l) => l.started === true, 120_000, `watchers on ${http} started`);
  let result: Promise<WatchResult> | undefined;
  return {
    expect: (c) => send({ expect: { ...c, sentAt: performance.timeOrigin + c.sentAt } }),
    stop: () =>
      (result ??= (async () => {
        send({ stop: true });
        const line = await out.waitFor((l) => 'result' in l, 60_000, `watchers on ${http} stopping`);
        return line.result as WatchResult;
      })()),
  };
}

/** One period of support/ha-dns-watch.ts (before the kill, after it). */
interface DnsPeriod {
  queries: number;
  answered: number;
  timeouts: number;
  misses: number;
  names: string[];
  first?: { name: string; at: number; got: number; rcode: number };
}

interface DnsWatch {
  ready: Promise<unknown>;
  /** Ends the current period and starts the next. */
  mark(): void;
  stop(): Promise<DnsPeriod[]>;
}

/** Starts support/ha-dns-watch.ts against a DNS port for these names (NAME → distinct addresses expected). */
function startDnsWatch(port: number, names: ReadonlyMap<string, number>): DnsWatch {
  const child = spawn(process.execPath, ['--import', 'tsx', dnsWatchPath, '--port', String(port), '--every-ms', '20', '--names', [...names].map(([n, c]) => `${n}:${c}`).join(',')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const out = new JsonLines(child.stdout!);
  return {
    ready: out.waitFor((l) => l.ready === true, 20_000, 'DNS watch start'),
    mark: () => void child.stdin!.write('mark\n'),
    async stop() {
      child.stdin!.end();
      const line = await out.waitFor((l) => 'periods' in l, 10_000, 'DNS watch summary');
      return line.periods as DnsPeriod[];
    },
  };
}

/** Time from `t0` until the aggregator lists every host (performance.now() ms → seconds). */
async function loadTime(http: string, t0: number): Promise<number> {
  try {
    return ((await waitForNodes(http, shape.hosts, LOAD_TIMEOUT_MS)) - t0) / 1000;
  } catch (err) {
    console.error(`bench:ha: ${http}: ${(err as Error).message}`);
    return Infinity;
  }
}

const seconds = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(2)} s` : `not within ${LOAD_TIMEOUT_MS / 1000} s`);

/** The instances an aggregator shows over all names, asked again (up to `timeoutMs`) until it is `want`. */
async function settledInstances(http: string, names: readonly string[], want: number, timeoutMs: number): Promise<number> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const n = await countInstances(http, names).catch((err: Error) => (console.error(`bench:ha: ${http}: ${err.message}`), NaN));
    if (n === want || performance.now() > end) return n;
    await sleep(500);
  }
}

async function main(): Promise<void> {
  const uptimeBefore = uptime();
  console.error(`bench:ha: ${uptimeBefore}`);
  const dir = await mkdtemp(join(tmpdir(), 'portolan-bench-ha-'));
  const names = Array.from({ length: shape.names }, (_, i) => `svc${i}`);
  const queries = await writeQueries(join(dir, 'queries.txt'), names.map((n) => `${n}.service.consul`));
  const aggregators: AggregatorProcess[] = [];
  const fleets: HaFleet[] = [];
  const watchers: Watch[] = [];
  let cluster: EtcdCluster | undefined;
  /** Warnings and errors the aggregators logged, by name and message (shown with the figures, and on failure). */
  const complaints = new Map<string, { count: number; first: Record<string, unknown> }>();
  const complaintsText = (): string[] => [...complaints].map(([k, c]) => `${k} ×${c.count}: ${JSON.stringify(c.first).slice(0, 300)}`);
  const start = async (name: string, store: string[]): Promise<AggregatorProcess> => {
    const onLog = (line: Record<string, unknown>): void => {
      if (Number(line.level) < 40) return;
      const key = `${name}: ${String(line.msg)}`;
      const c = complaints.get(key);
      if (c) c.count++;
      else complaints.set(key, { count: 1, first: line });
    };
    const agg = await startAggregatorProcess({ cli: args.cli, nodeFlags, args: ['--reap-after', '10m', ...store], onLog });
    aggregators.push(agg);
    // An aggregator that dies on its own (not the kill of the failover, not the final stop) is
    // reported with the last lines it wrote (a crash's stack is not a JSON log line).
    const tail: string[] = [];
    agg.child.stderr!.on('data', (d: Buffer) => {
      tail.push(...d.toString().split('\n').filter(Boolean));
      tail.splice(0, Math.max(0, tail.length - 40));
    });
    agg.child.once('exit', (code, signal) => {
      if (ending.has(agg)) return;
      const text = `${name} exited on its own (${code ?? signal}); its last lines:\n${tail.join('\n')}`;
      crashes.push(text);
      console.error(`bench:ha: ${text}`);
    });
    return agg;
  };
  const ending = new Set<AggregatorProcess>();
  const crashes: string[] = [];
  const watch = async (http: string, on: readonly string[], expected?: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<Watch> => {
    const w = await startWatch(http, on, expected);
    watchers.push(w);
    return w;
  };
  try {
    // 1. memory reference
    phase('memory reference (and etcd starting)');
    const [m, etcd] = await Promise.all([start('M', []), EtcdCluster.start({ members })]);
    cluster = etcd;
    const fleetM = new HaFleet(shape, [label(m)], args.seed);
    fleets.push(fleetM);
    const tm = performance.now();
    await fleetM.connectAll();
    const memLoadS = await loadTime(m.http, tm);
    const memLoadedCount = fleetM.instanceCount;
    const memInstances = await settledInstances(m.http, names, memLoadedCount, 10_000);
    const memRss = await m.memory();

    // 2. etcd: A and B on one cluster
    phase(`etcd (${members} member${members > 1 ? 's' : ''}), aggregators A and B`);
    const etcdStore = ['--store', cluster.url];
    const [a, b] = await Promise.all([start('A', etcdStore), start('B', etcdStore)]);
    const etcdBefore = await etcdCounters(cluster);
    const fleetE = new HaFleet(shape, [label(a), label(b)], args.seed + 1);
    fleets.push(fleetE);
    const te = performance.now();
    const registered = fleetE.connectAll().then(() => performance.now());
    const [loadA, loadB] = await Promise.all([loadTime(a.http, te), loadTime(b.http, te)]);
    const registeredS = ((await withTimeout(registered, 30_000, 'every uplink registered').catch(() => Infinity)) - te) / 1000;
    const loadedCount = fleetE.instanceCount;
    const [instA, instB] = await Promise.all([a, b].map((x) => settledInstances(x.http, names, loadedCount, 10_000)));
    if (crashes.length > 0) throw new Error(`an aggregator died during the load:\n${crashes.join('\n')}`);
    const etcdLoadS = Math.max(loadA, loadB);
    if (!Number.isFinite(etcdLoadS)) console.error(`bench:ha: uplink closes: ${fleetE.closesText()}\n${complaintsText().join('\n')}`);
    const [indexA, indexB] = await Promise.all([catalogIndex(a.http), catalogIndex(b.http)]);
    await sleep(1000); // writes still in flight (a node listed before its last transaction) land
    const etcdLoaded = await etcdCounters(cluster);
    const load = etcdDelta(etcdBefore, etcdLoaded);
    const per1k = 1000 / loadedCount;
    // The etcd side must have settled (no uplink closed for 5 s) before the side-by-side
    // figures (idle CPU, DNS, churn), or they measure its reconnect storm on the shared cores rather than the stores.
    const settleMs = await fleetE.quiet(5000, smoke ? 10_000 : 60_000);
    const split = { a: fleetE.homedOn(label(a)).length, b: fleetE.homedOn(label(b)).length };
    const [rssA, rssB] = await Promise.all([a.memory(), b.memory()]);
    const etcdPids = Array.from({ length: members }, (_, i) => cluster!.pid(i)).filter((p): p is number => p !== undefined);
    const [idleM, idleA, idleB, ...idleEtcd] = await Promise.all([m.pid, a.pid, b.pid, ...etcdPids].map((p) => cpuPercent(p, idleSeconds * 1000)));
    const idle = { m: idleM!, a: idleA!, b: idleB! };
    const etcdIdleCpu = idleEtcd.reduce((x, y) => x + y, 0);

    // 3. DNS, fleets idle: M, A, B in turn
    const closesAtDns = { m: fleetM.closeCount, e: fleetE.closeCount };
    phase('DNS');
    const dns: Record<'m' | 'a' | 'b', DnsperfResult[]> = { m: [], a: [], b: [] };
    if (!smoke) for (const agg of [m, a, b]) await dnsperf(agg.dnsPort, queries, 1, { latencies: false }); // warm-up
    // M, A, B, then B, A, M, …: a drift of the machine's load over the rounds falls on all three alike.
    for (let r = 0; r < dnsRounds; r++) {
      const order = (['m', 'a', 'b'] as const).slice();
      if (r % 2 === 1) order.reverse();
      for (const k of order) dns[k].push(await dnsperf({ m, a, b }[k].dnsPort, queries, dnsSeconds, { latencies: false }));
    }
    const median = (rs: DnsperfResult[]): number => {
      const q = rs.map((x) => x.qps).sort((x, y) => x - y);
      return q.length % 2 ? q[(q.length - 1) / 2]! : (q[q.length / 2 - 1]! + q[q.length / 2]!) / 2;
    };
    const qps = { m: median(dns.m), a: median(dns.a), b: median(dns.b) };
    const dnsLost = [...dns.m, ...dns.a, ...dns.b].reduce((n, x) => n + x.lost, 0);

    // 4. churn: M → M (reference), then A → B
    const closesInDns = { m: fleetM.closeCount - closesAtDns.m, e: fleetE.closeCount - closesAtDns.e };
    phase('churn on M');
    const watchedNames = sample(names, watcherCount);
    const wm = await watch(m.http, watchedNames);
    const changesM = await fleetM.churn(rate, churnSeconds, random, fleetM.hosts, (c) => wm.expect(c));
    await sleep(graceMs);
    const rm_ = await wm.stop();
    const churnM = { changes: changesM, unseen: rm_.unseen, wake: percentiles(rm_.latencies) };
    // M and its fleet have given their figures: stopped, so that the etcd side has the cores alone.
    await fleetM.stop();
    ending.add(m);
    await m.stop();

    // Watched on B (the figure) and on A too: A's own view of its write tells the etcd round
    // trip (write, then the watch event back into A's replica) from the propagation to B.
    phase(`churn on A's hosts (${fleetE.homedOn(label(a)).length}), watched on B and A`);
    const onA = fleetE.homedOn(label(a));
    const [wb, wa] = await Promise.all([watch(b.http, watchedNames), watch(a.http, watchedNames)]);
    const etcdChurnBefore = await etcdCounters(cluster);
    // No host homed on A (every agent moved away from it): nothing to time, the figures say n/a.
    const changesE = onA.length === 0 ? 0 : await fleetE.churn(rate, churnSeconds, random, onA, (c) => (wb.expect(c), wa.expect(c)));
    await sleep(graceMs);
    const etcdChurn = etcdDelta(etcdChurnBefore, await etcdCounters(cluster));
    const [rb, ra] = await Promise.all([wb.stop(), wa.stop()]);
    const churnE = { changes: changesE, unseen: rb.unseen, wake: percentiles(rb.latencies), onA: { unseen: ra.unseen, wake: percentiles(ra.latencies) } };
    const fsync = { p50: histogramQuantile(etcdChurn.walFsync, 0.5) * 1000, p99: histogramQuantile(etcdChurn.walFsync, 0.99) * 1000, mean: (etcdChurn.walFsync.sum / etcdChurn.walFsync.count) * 1000 };

    if (crashes.length > 0) throw new Error(`an aggregator died before the failover:\n${crashes.join('\n')}`);
    // 5. failover: kill -9 A, watch B
    phase('failover');
    await sleep(1000);
    const expected = fleetE.expected();
    const closesInChurn = { m: fleetM.closeCount - closesAtDns.m - closesInDns.m, e: fleetE.closeCount - closesAtDns.e - closesInDns.e };
    const passingBefore = await countPassing(b.http, names);
    phase(`failover: watchers on B, then kill -9 A (${fleetE.homedOn(label(a)).length} hosts homed there)`);
    const wf = await watch(b.http, names, expected);
    const dnsSample = new Map(sample([...expected.entries()], dnsNames).map(([n, ids]) => [n, ids.size]));
    const dw = startDnsWatch(b.dnsPort, dnsSample);
    await dw.ready;
    await sleep(1000);
    dw.mark();
    const homedOnA = fleetE.homedOn(label(a)).map((h) => h.index);
    const rehomed = fleetE.awaitRegistrations(homedOnA);
    const killedAt = performance.now();
    ending.add(a);
    await a.kill();
    let rehomeError: string | undefined;
    await withTimeout(rehomed, 60_000, `re-homing ${homedOnA.length} hosts to B`).catch((err: Error) => (rehomeError = err.message));
    const rehomeTimes = homedOnA.map((h) => {
      const r = fleetE.registrations.find((x) => x.host === h && x.at >= killedAt && x.url === label(b));
      return r ? (r.at - killedAt) / 1000 : Infinity;
    });
    const rest = killedAt + watchSeconds * 1000 - performance.now();
    if (rest > 0) await sleep(rest);
    const [dnsBefore, dnsAfter] = (await dw.stop()) as [DnsPeriod, DnsPeriod];
    const rf = await wf.stop();
    const falseWithdrawals = rf.withdrawn;
    const [nodesB, passingAfter] = await Promise.all([getJson<unknown[]>(b.http, '/v1/catalog/nodes').then((n) => n.length), countPassing(b.http, names)]);
    const rssBAfter = await b.memory();
    const rehome = percentiles(rehomeTimes.filter(Number.isFinite));
    const notRehomed = rehomeTimes.filter((t) => !Number.isFinite(t)).length;
    const uptimeAfter = uptime();

    const rss = (x: AggregatorMemory): string => `${mb(x.rss)} (heap ${mb(x.heapUsed)})`;
    const ratio = (x: number): string => `${x.toFixed(2)} ×`;
    const perK = (n: number): string => (n * per1k).toFixed(1);
    phase('report');
    const figures: Figure[] = [
      { label: 'load before (uptime)', value: uptimeBefore.replace(/^.*load average: /, '') },
      { label: `memory: ${shape.hosts} hosts stored on M`, value: `${seconds(memLoadS)}; ${memInstances} of ${memLoadedCount} instances` },
      { label: `etcd: ${shape.hosts} hosts stored, visible on A and B`, value: `${seconds(etcdLoadS)} (A ${seconds(loadA)}, B ${seconds(loadB)})`, goal: `≤ ${GOALS.loadS} s`, met: etcdLoadS <= GOALS.loadS },
      { label: '  instances shown by A / B', value: `${instA} / ${instB} of ${loadedCount}` },
      { label: '  etcd / memory', value: ratio(etcdLoadS / memLoadS) },
      { label: '  (every uplink registered)', value: `${seconds(registeredS)}; split A ${split.a} / B ${split.b}` },
      { label: '  X-Consul-Index on A / B after load', value: `${indexA} / ${indexB}` },
      { label: `etcd writes for the load (${loadedCount} instances)`, value: `${load.revision} revisions, ${load.txns} txns, ${load.puts} puts, ${load.proposals} proposals, ${load.leasesGranted} leases` },
      { label: '  per 1,000 instances', value: `${perK(load.revision)} revisions, ${perK(load.txns)} txns, ${perK(load.puts)} puts` },
      { label: 'etcd DB size after load (in use)', value: `${mb(load.dbSize)} (${mb(load.dbSizeInUse)})` },
      { label: '  per 1,000 instances', value: `${mb(load.dbSize * per1k)} (${mb(load.dbSizeInUse * per1k)} in use)` },
      {
        label: 'etcd side settled after the load (no uplink closed for 5 s)',
        value: Number.isFinite(settleMs) ? `after ${seconds(settleMs / 1000)}` : `not within ${smoke ? 10 : 60} s: the figures below include its reconnects`,
      },
      { label: '  uplink closes during DNS / churn: memory fleet', value: `${closesInDns.m} / ${closesInChurn.m}` },
      { label: '  uplink closes during DNS / churn: etcd fleet', value: `${closesInDns.e} / ${closesInChurn.e}` },
      { label: 'RSS M (memory) after load', value: rss(memRss) },
      { label: 'RSS A (etcd) after load', value: rss(rssA), goal: `≤ ${GOALS.rssMb} MB`, met: rssA.rss <= GOALS.rssMb * 2 ** 20 },
      { label: 'RSS B (etcd) after load', value: rss(rssB), goal: `≤ ${GOALS.rssMb} MB`, met: rssB.rss <= GOALS.rssMb * 2 ** 20 },
      { label: 'CPU at idle M / A / B', value: `${idle.m.toFixed(1)} / ${idle.a.toFixed(1)} / ${idle.b.toFixed(1)} % of a core` },
      { label: `CPU at idle, ${etcdPids.length} etcd members together`, value: `${etcdIdleCpu.toFixed(1)} % of a core` },
      { label: `DNS qps M (memory), median of ${dnsRounds}`, value: `${qps.m} (${dns.m.map((x) => x.qps).join(', ')})` },
      { label: `DNS qps A (etcd), median of ${dnsRounds}`, value: `${qps.a} (${dns.a.map((x) => x.qps).join(', ')})` },
      { label: `DNS qps B (etcd), median of ${dnsRounds}`, value: `${qps.b} (${dns.b.map((x) => x.qps).join(', ')})` },
      { label: 'DNS qps A / M', value: ratio(qps.a / qps.m), goal: `≥ ${GOALS.dnsRatio} ×`, met: qps.a / qps.m >= GOALS.dnsRatio },
      { label: 'DNS qps B / M', value: ratio(qps.b / qps.m), goal: `≥ ${GOALS.dnsRatio} ×`, met: qps.b / qps.m >= GOALS.dnsRatio },
      { label: '  DNS queries lost (all runs)', value: String(dnsLost) },
      { label: `churn M → M (memory): ${churnM.wake.count} of ${churnM.changes} timed, p50 / p99`, value: `${ms(churnM.wake.p50)} / ${ms(churnM.wake.p99)} (max ${ms(churnM.wake.max)}, unseen ${churnM.unseen})` },
      { label: `churn A → B (etcd): ${churnE.wake.count} of ${churnE.changes} timed, p50`, value: ms(churnE.wake.p50) },
      { label: 'churn A → B (etcd) p99', value: ms(churnE.wake.p99), goal: `≤ ${GOALS.churnP99Ms} ms`, met: churnE.wake.p99 <= GOALS.churnP99Ms },
      { label: '  max, unseen', value: `${ms(churnE.wake.max)}, ${churnE.unseen}` },
      { label: '  p99 etcd / memory', value: ratio(churnE.wake.p99 / churnM.wake.p99) },
      { label: '  change A → A (etcd) p50 / p99', value: `${ms(churnE.onA.wake.p50)} / ${ms(churnE.onA.wake.p99)} (max ${ms(churnE.onA.wake.max)})` },
      { label: `  etcd WAL fsync during churn (${etcdChurn.walFsync.count}), mean / p50 / p99 ≤`, value: `${ms(fsync.mean)} / ${ms(fsync.p50)} / ${ms(fsync.p99)}` },
      { label: `  etcd writes per change (${changesE} changes)`, value: `${(etcdChurn.revision / changesE).toFixed(2)} revisions, ${(etcdChurn.txns / changesE).toFixed(2)} txns, ${(etcdChurn.puts / changesE).toFixed(2)} puts, ${(etcdChurn.deletes / changesE).toFixed(2)} deletes` },
      { label: `failover: kill -9 A, ${homedOnA.length} hosts re-homed to B, p50`, value: `${rehome.p50.toFixed(2)} s` },
      { label: 'failover re-home p99', value: `${rehome.p99.toFixed(2)} s`, goal: `≤ ${GOALS.failoverP99S} s`, met: rehome.p99 <= GOALS.failoverP99S && notRehomed === 0 },
      { label: '  max, not re-homed', value: `${rehome.max.toFixed(2)} s, ${notRehomed}${rehomeError ? ` (${rehomeError})` : ''}` },
      {
        label: `false withdrawals on B (?passing, ${names.length} names, ${watchSeconds} s)`,
        value: `${falseWithdrawals} instances`,
        goal: `${GOALS.falseWithdrawals}`,
        met: falseWithdrawals === GOALS.falseWithdrawals,
      },
      {
        label: `false withdrawals on B (DNS, ${dnsSample.size} names every 20 ms)`,
        value: `${dnsAfter.misses} short answers of ${dnsAfter.answered} (${dnsAfter.names.length} names; ${dnsAfter.timeouts} unanswered)`,
        goal: '0',
        met: dnsAfter.misses === 0,
      },
      { label: '  short DNS answers in the 1 s before the kill', value: `${dnsBefore.misses} of ${dnsBefore.answered}` },
      { label: '  B after: nodes, passing instances', value: `${nodesB} of ${shape.hosts}, ${passingAfter} of ${fleetE.instanceCount} (before ${passingBefore})` },
      { label: 'RSS B after failover (all agents)', value: rss(rssBAfter), goal: `≤ ${GOALS.rssMb} MB`, met: rssBAfter.rss <= GOALS.rssMb * 2 ** 20 },
      { label: 'uplink closes, memory fleet', value: fleetM.closesText() },
      { label: 'uplink closes, etcd fleet (the kill included)', value: fleetE.closesText() },
      { label: 'aggregator warnings and errors logged', value: String([...complaints.values()].reduce((n, c) => n + c.count, 0)) },
      { label: 'aggregators that exited on their own', value: String(crashes.length) },
      { label: 'load after (uptime)', value: uptimeAfter.replace(/^.*load average: /, '') },
    ];
    await report(
      'ha',
      `bench:ha ${shape.hosts} hosts × ${shape.servicesPerHost} services (${loadedCount} instances, ${shape.names} names), 2 aggregators on ${members} etcd member${members > 1 ? 's' : ''}${smoke ? ' [smoke]' : ''}`,
      figures,
      {
        shape, members, rate, churnSeconds, dnsSeconds, dnsRounds, watcherCount, watchSeconds, uptimeBefore, uptimeAfter,
        memory: { loadS: memLoadS, rss: memRss, churn: churnM },
        etcd: { loadS: etcdLoadS, loadA, loadB, registeredS, split, indexA, indexB, writesForLoad: load, writesForChurn: etcdChurn, walFsyncDuringChurnMs: fsync, rssA, rssB, churn: churnE },
        idleCpu: { ...idle, etcd: etcdIdleCpu }, settleMs, closesInDns, closesInChurn,
        dns: { qps, runs: dns, lost: dnsLost },
        complaints: Object.fromEntries(complaints), closes: { memory: Object.fromEntries(fleetM.closes), etcd: Object.fromEntries(fleetE.closes) },
        failover: { hosts: homedOnA.length, rehome, notRehomed, rehomeError, falseWithdrawals, withdrawn: rf.withdrawnSample, dns: { before: dnsBefore, after: dnsAfter }, nodesB, passingBefore, passingAfter, rssBAfter },
      },
      [
        'load generator (both fleets with the real agent uplink; the blocking watchers and the DNS watch in child processes), dnsperf, the aggregators and the etcd members share the same cores',
        'M: --store memory, its own copy of the fleet (stopped after the churn on M); A, B: --store etcd://… on one cluster, the fleet given both URLs',
        'stored and visible: /v1/catalog/nodes on A and B polled every 50 ms; churn: blocking /v1/health/service/<name>?passing on the other aggregator',
        're-homed: the uplink\'s registration with B (the pong to the ping after its snapshot), from the kill',
        ...complaintsText().map((t) => `logged by ${t}`),
        ...crashes,
      ],
    );
    // Goals are judged in the table; the exit status says whether the run itself went wrong
    // (a smoke run on a busy machine may lose a DNS query under dnsperf's full load: not judged).
    const failed = crashes.length > 0 || (!smoke && dnsLost > 0) || notRehomed > 0 || nodesB !== shape.hosts || memInstances !== memLoadedCount || instA !== loadedCount || instB !== loadedCount;
    if (failed) process.exitCode = 1;
  } finally {
    for (const w of watchers) await w.stop();
    await Promise.all(fleets.map((f) => f.stop()));
    for (const x of aggregators) ending.add(x);
    await Promise.all(aggregators.map((x) => x.stop()));
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
