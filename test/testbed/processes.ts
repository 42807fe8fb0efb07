import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when the process was ended by a signal. */
  code: number | null;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command to completion. Never throws for a non-zero exit; throws when it cannot start or times out. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: opts.env ?? process.env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && (error.killed || typeof error.code === 'string')) {
          const why = error.killed ? `timed out after ${timeoutMs} ms` : error.message;
          reject(new Error(`${cmd} ${args.join(' ')}: ${why}\n${stderr}`));
          return;
        }
        resolve({ stdout, stderr, code: error ? ((error.code as number | undefined) ?? null) : 0 });
      },
    );
  });
}

/** Runs a command and returns its stdout; throws with its stderr when it exits non-zero. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.stdout;
}

interface ProcStat {
  state: string;
  ppid: number;
  startTime: string;
}

async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its closing one.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', ppid: Number(fields[1]), startTime: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** The kernel's start time of a process (clock ticks since boot): with the PID, identifies it across PID reuse. */
export async function startTimeOf(pid: number): Promise<string | undefined> {
  return (await readStat(pid))?.startTime;
}

/** Waits until the process has exited; false when it is still alive after timeoutMs. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL and wait for the exit. */
export async function stopPid(pid: number, graceMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (await waitForExit(pid, graceMs)) return;
  await killPids([pid]);
}

/** SIGKILL each process and wait until all have exited. */
export async function killPids(pids: readonly number[]): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGKILL');
  const stuck: number[] = [];
  for (const pid of pids) if (!(await waitForExit(pid, 10_000))) stuck.push(pid);
  if (stuck.length > 0) throw new Error(`processes still alive 10 s after SIGKILL: ${stuck.join(', ')}`);
}

/** The given processes and all their descendants (containers are children of their shim). */
export async function withDescendants(roots: readonly number[]): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = await readStat(pid);
    if (!stat) continue;
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), pid]);
  }
  const all = new Set<number>();
  const queue = [...roots];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (all.has(pid)) continue;
    all.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...all];
}
