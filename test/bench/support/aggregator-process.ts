import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../../cli/v8-tuning.js';
import { memoryOf } from './proc-stats.js';

const probe = fileURLToPath(new URL('./memory-probe.mjs', import.meta.url));

/** The built CLI, as users run it; `--cli` on each benchmark points elsewhere (e.g. a fresh build). */
export const defaultCli = 'dist/cli/portolan.js';

export interface AggregatorProcess {
  pid: number;
  httpPort: number;
  dnsPort: number;
  /** Host:port agents and HTTP clients use. */
  http: string;
  child: ChildProcess;
  /** RSS from /proc and the V8 heap after a full GC, as the aggregator itself reports it. */
  memory(): Promise<AggregatorMemory>;
  /**
   * Writes a V8 heap snapshot of the aggregator to `file`. Writing one briefly needs about
   * as much memory again as the heap, so RSS read afterwards is inflated.
   */
  heapSnapshot(file: string): Promise<void>;
  /** SIGKILL by PID (a crash, as in a reconnect storm) and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM by PID, SIGKILL after 10 s; waits for the exit. */
  stop(): Promise<void>;
}

export interface AggregatorMemory {
  /** VmRSS from /proc, read before the probe's full GC. */
  rss: number;
  heapUsed: number;
  heapTotal: number;
  /** Memory of C++ objects bound to JS (Buffers and ArrayBuffers among them). */
  external: number;
  arrayBuffers: number;
  /** Bytes committed (`size`) and in use by live or not yet collected objects, per V8 heap space. */
  spaces: Record<string, { size: number; used: number }>;
}

export interface AggregatorStart {
  cli: string;
  /** Fixed ports (for a restart on the same address); 0 lets the kernel choose. */
  httpPort?: number;
  dnsPort?: number;
  /** Address to listen on (0.0.0.0 when testbed hosts must reach it). */
  host?: string;
  args?: string[];
  /** Options for node itself (V8 heap sizing, say), before the CLI's path. */
  nodeFlags?: string[];
  /** Receives every log line (parsed JSON), e.g. to count registrations. */
  onLog?: (line: Record<string, unknown>) => void;
}

/**
 * A benchmark's simulated fleet, watchers and streams all come from 127.0.0.1: to the aggregator
 * one client, as a load balancer in front would be, so the per-client cap (200 by default) is off.
 * A benchmark's own `args` come after and may set it again.
 */
const FLEET_ON_ONE_ADDRESS = ['--http-max-conns-per-client', '0'];

/** Starts `portolan aggregator` in its own process and waits for its 'aggregator serving' line. */
export async function startAggregatorProcess(o: AggregatorStart): Promise<AggregatorProcess> {
  if (!existsSync(o.cli)) throw new Error(`${o.cli} not found: run "npm run build" first (or pass --cli)`);
  const host = o.host ?? '127.0.0.1';
  const child = spawn(
    process.execPath,
    [...NODE_FLAGS, ...(o.nodeFlags ?? []), '--expose-gc', '--import', probe, o.cli, 'aggregator', '--http', `${host}:${o.httpPort ?? 0}`, '--dns', `${host}:${o.dnsPort ?? 0}`, ...FLEET_ON_ONE_ADDRESS, ...(o.args ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  const exited = once(child, 'exit');
  const tail: string[] = [];
  const serving = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (text) => {
      tail.push(text);
      if (tail.length > 20) tail.shift();
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      if (line.msg === 'aggregator serving') resolve(line);
      o.onLog?.(line);
    });
    void exited.then(([code]) => reject(new Error(`aggregator exited (${String(code)}) before serving:\n${tail.join('\n')}`)));
  });
  const line = await serving;
  const port = (v: unknown): number => Number(String(v).split(':').pop());
  const httpPort = port(line.http);
  const dnsPort = port(line.dns);
  const pid = child.pid!;
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  return {
    pid,
    httpPort,
    dnsPort,
    http: `127.0.0.1:${httpPort}`,
    child,
    async memory() {
      const { rss } = await memoryOf(pid);
      child.send('memory');
      const [usage] = (await once(child, 'message')) as [NodeJS.MemoryUsage & Pick<AggregatorMemory, 'spaces'>];
      return { rss, heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, arrayBuffers: usage.arrayBuffers, spaces: usage.spaces };
    },
    async heapSnapshot(file) {
      child.send({ heapSnapshot: file });
      await once(child, 'message');
    },
    async kill() {
      if (gone()) return;
      process.kill(pid, 'SIGKILL');
      await exited;
    },
    async stop() {
      if (gone()) return;
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => !gone() && process.kill(pid, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
