import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** One entry of the Prometheus API's /api/v1/targets `activeTargets`. */
export interface ActiveTarget {
  discoveredLabels: Record<string, string>;
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: string;
}

/** A running scraper that reads its targets from consul_sd_configs. */
export interface Scraper {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** The active targets of one scrape pool (job). */
  activeTargets(job: string): Promise<ActiveTarget[]>;
  /** Everything it logged, for failure messages. */
  log(): string;
  /** SIGTERM by PID, SIGKILL after 10 s; removes its config and data directory. */
  stop(): Promise<void>;
}

/**
 * The two Prometheus-style scrapers Debian ships. Each one's own Consul discovery code runs
 * against the aggregator; they differ only in how they are started.
 */
export interface ScraperKind {
  name: string;
  bin: string;
  /** Why this scraper cannot run here, or undefined. */
  skipReason(): Promise<string | undefined>;
  /** The consul_sd_configs entry's extra keys, and the command line. */
  sdOptions: readonly string[];
  argv(o: { configFile: string; dataDir: string; listen: string }): string[];
  /** Path answering 200 once the web API is up. */
  readyPath: string;
  /** Series of its own /metrics: failed Consul calls (must stay 0) and watches that ran (must be >= 1). */
  metrics: { failures: readonly string[]; watches: readonly string[] };
}

// The blocking queries return on change; refresh_interval is only the pause between two of them.
const PROMETHEUS_SD_OPTIONS = ['refresh_interval: 1s'];

/** Debian's bookworm build drops Consul SD ("Disable Consul SD until its Debian package is back in shape"). */
async function prometheusSkipReason(): Promise<string | undefined> {
  if (!existsSync('/usr/bin/prometheus')) return '/usr/bin/prometheus is not installed (Debian package prometheus)';
  const dir = await mkdtemp(join(tmpdir(), 'portolan-promtool-'));
  try {
    const file = join(dir, 'prometheus.yml');
    await writeFile(file, config('probe', '127.0.0.1:1', PROMETHEUS_SD_OPTIONS));
    await promisify(execFile)('/usr/bin/promtool', ['check', 'config', file]);
    return undefined;
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    const text = `${stdout}${stderr}`.trim() || String(err);
    return /consul_sd_configs not found/.test(text)
      ? 'this Prometheus build has no Consul service discovery (Debian bookworm disables it)'
      : `promtool rejects a consul_sd_configs config: ${text}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const PROMETHEUS: ScraperKind = {
  name: 'Prometheus',
  bin: '/usr/bin/prometheus',
  skipReason: prometheusSkipReason,
  sdOptions: PROMETHEUS_SD_OPTIONS,
  argv: (o) => [`--config.file=${o.configFile}`, `--storage.tsdb.path=${o.dataDir}`, `--web.listen-address=${o.listen}`],
  readyPath: '/-/ready',
  metrics: {
    failures: ['prometheus_sd_consul_rpc_failures_total'],
    watches: [
      'prometheus_sd_consul_rpc_duration_seconds_count{call="services",endpoint="catalog"}',
      'prometheus_sd_consul_rpc_duration_seconds_count{call="service",endpoint="health"}',
    ],
  },
};

export const VICTORIA_METRICS: ScraperKind = {
  name: 'VictoriaMetrics',
  bin: '/usr/bin/victoria-metrics',
  skipReason: async () =>
    existsSync('/usr/bin/victoria-metrics') ? undefined : '/usr/bin/victoria-metrics is not installed (Debian package victoria-metrics)',
  sdOptions: [],
  argv: (o) => [
    `-promscrape.config=${o.configFile}`,
    `-storageDataPath=${o.dataDir}`,
    `-httpListenAddr=${o.listen}`,
    // Its counterpart of refresh_interval: how often the Consul watcher's results are read.
    '-promscrape.consulSDCheckInterval=1s',
  ],
  readyPath: '/health',
  metrics: {
    failures: ['vm_promscrape_discovery_retries_total'],
    watches: ['vm_promscrape_discovery_consul_service_watchers_created_total'],
  },
};

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** The job scraping the aggregator's own /metrics (a static target: the Consul server itself). */
export const AGGREGATOR_JOB = 'portolan-aggregator';

/**
 * One job discovering every service through consul_sd_configs at `consulServer`, and one
 * scraping that server's own /metrics. Nothing else is configured (no alerting, no remote
 * write), so the scraper talks only to that server and to the targets it finds there.
 */
function config(job: string, consulServer: string, sdOptions: readonly string[], auth: ScraperAuth = {}): string {
  return [
    'global:',
    '  scrape_interval: 30s',
    'scrape_configs:',
    `  - job_name: ${job}`,
    '    consul_sd_configs:',
    `      - server: '${consulServer}'`,
    ...(auth.token ? [`        token: '${auth.token}'`] : []),
    ...sdOptions.map((o) => `        ${o}`),
    `  - job_name: ${AGGREGATOR_JOB}`,
    '    scrape_interval: 1s',
    // Sent as Authorization: Bearer, as for any scrape target.
    ...(auth.metricsToken ? ['    authorization:', `      credentials: '${auth.metricsToken}'`] : []),
    '    static_configs:',
    `      - targets: ['${consulServer}']`,
    '',
  ].join('\n');
}

/** Tokens for an aggregator with --api-token / --metrics-token: consul_sd_configs' `token`, and the /metrics job's bearer credentials. */
export interface ScraperAuth {
  token?: string;
  metricsToken?: string;
}

/** Starts the scraper on a free loopback port with its own config and storage in a temp dir; resolves once it is ready. */
export async function startScraper(kind: ScraperKind, opts: { job: string; consulServer: string; readyTimeoutMs?: number; auth?: ScraperAuth }): Promise<Scraper> {
  const dir = await mkdtemp(join(tmpdir(), `portolan-${kind.name.toLowerCase()}-`));
  const configFile = join(dir, 'scrape.yml');
  await writeFile(configFile, config(opts.job, opts.consulServer, kind.sdOptions, opts.auth));
  const listen = `127.0.0.1:${await freeLoopbackPort()}`;
  const url = `http://${listen}`;
  const child = spawn(kind.bin, kind.argv({ configFile, dataDir: join(dir, 'data'), listen }), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = once(child, 'exit');

  const scraper: Scraper = {
    url,
    async activeTargets(job) {
      const res = await fetch(`${url}/api/v1/targets?state=active`);
      if (!res.ok) throw new Error(`/api/v1/targets: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { data: { activeTargets: ActiveTarget[] } };
      return body.data.activeTargets.filter((t) => t.scrapePool === job);
    },
    log: () => output,
    stop: () => stopProcess(child, exited, dir),
  };
  try {
    await waitReady(`${url}${kind.readyPath}`, child, opts.readyTimeoutMs ?? 20_000);
  } catch (err) {
    await scraper.stop();
    throw new Error(`${kind.name}: ${String(err)}\n--- log tail ---\n${output.split('\n').slice(-20).join('\n')}`);
  }
  return scraper;
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready within ${timeoutMs} ms`);
}

async function stopProcess(child: ChildProcess, exited: Promise<unknown>, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    const pid = child.pid;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await rm(dir, { recursive: true, force: true });
}
