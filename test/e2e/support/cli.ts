import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../../cli/v8-tuning.js';

/** The built CLI (npm run build), as the e2e tests run it. */
export const cliPath = fileURLToPath(new URL('../../../dist/cli/portolan.js', import.meta.url));
/** `node` with the flags the image and the systemd units give it, then the CLI. */
export const cliCommand = (): string[] => [process.execPath, ...NODE_FLAGS, cliPath];

export interface CliProcess {
  child: ChildProcess;
  /** Every log line (pino JSON, parsed when possible) the process wrote so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line matching, or rejects after timeoutMs with the log tail. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM (or the signal given), then waits for the exit; SIGKILL after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs the built CLI, the way users run it. `netns` runs it inside a test host's network
 * namespace (nsenter keeps /sys and cgroups, unlike `ip netns exec`); `nice` lowers its CPU
 * priority (a load generator that would run on another machine, not on the measured one's cores).
 * `bin` runs another `portolan` executable (an installed one) instead of node on the built CLI.
 */
export function runCli(args: string[], opts: { netns?: string; env?: NodeJS.ProcessEnv; nice?: number; bin?: string } = {}): CliProcess {
  const argv = [...(opts.nice ? ['nice', '-n', String(opts.nice)] : []), ...(opts.bin ? [opts.bin] : cliCommand()), ...args];
  const [cmd, ...rest] = opts.netns ? ['nsenter', `--net=/var/run/netns/${opts.netns}`, ...argv] : argv;
  const child = spawn(cmd!, rest, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  const watchers = new Set<() => void>();
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
    for (const w of watchers) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    logs,
    waitForLog(match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(match);
          if (hit) {
            cleanup();
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`log line not seen within ${timeoutMs} ms; last lines:\n${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        void exited.then(() => {
          if (!watchers.has(check)) return;
          cleanup();
          reject(new Error(`process exited before the log line; last lines:\n${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`));
        });
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A client command of the built CLI (members, catalog …) run to its end: its exit code and output. */
export function runCliOnce(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const [node, ...cli] = cliCommand();
  const child = spawn(node!, [...cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let [out, err] = ['', ''];
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return once(child, 'close').then(([code]) => ({ code: code as number | null, out, err }));
}
