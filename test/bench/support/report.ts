import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';

/** One line of a benchmark's summary table; `goal` and `met` only where the issue sets a goal. */
export interface Figure {
  label: string;
  value: string;
  goal?: string;
  met?: boolean;
}

export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  loadAverage: number;
}

export function machine(): Machine {
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: execFileSync('uname', ['-r']).toString().trim(),
    loadAverage: loadavg()[0]!,
  };
}

/** Nearest-rank percentiles of unsorted samples (NaN when there are none). */
export function percentiles(samples: readonly number[]): { count: number; p50: number; p95: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
  return { count: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.length ? s[s.length - 1]! : NaN };
}

export const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : 'n/a');
export const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/**
 * Prints the table (with the machine and the note that the load generator shares the
 * cores with what it measures) and writes every figure as JSON to test/artifacts.
 */
export async function report(name: string, title: string, figures: readonly Figure[], data: Record<string, unknown>, notes: readonly string[] = []): Promise<string> {
  const m = machine();
  const width = Math.max(...figures.map((f) => f.label.length));
  const valueWidth = Math.max(...figures.map((f) => f.value.length));
  const lines = [
    `== ${title} ==`,
    `${m.date}  ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}, load avg ${m.loadAverage.toFixed(2)}`,
    ...notes.map((n) => `note: ${n}`),
    `${'figure'.padEnd(width)} | ${'measured'.padEnd(valueWidth)} | goal`,
    ...figures.map((f) => {
      const goal = f.goal === undefined ? '' : `${f.goal}  ${f.met ? 'met' : 'NOT MET'}`;
      return `${f.label.padEnd(width)} | ${f.value.padEnd(valueWidth)} | ${goal}`;
    }),
  ];
  console.log(lines.join('\n'));
  const file = join('test', 'artifacts', `bench-${name}.json`);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ benchmark: name, machine: m, notes, figures, ...data }, null, 2)}\n`);
  console.log(`figures written to ${file}`);
  return file;
}
