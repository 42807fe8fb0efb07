import type { Host } from '../../testbed/index.js';

export interface DigResult {
  status: string;
  flags: string[];
  answers: Array<{ name: string; ttl: number; type: string; data: string }>;
  authority: string[];
  additional: string[];
}

/** Runs the real `dig` inside a test host's namespace and parses its default output. */
export async function digFrom(host: Host, server: string, port: number, name: string, type: string, extra: string[] = []): Promise<DigResult> {
  const r = await host.exec('dig', [`@${server}`, '-p', String(port), name, type, '+time=2', '+tries=1', ...extra]);
  if (r.code !== 0) throw new Error(`dig ${name} ${type} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return parseDig(r.stdout);
}

export function parseDig(out: string): DigResult {
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(out)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = (title: string) => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(out);
    return m ? m[1]!.split('\n').filter((l) => l && !l.startsWith(';')) : [];
  };
  const answers = section('ANSWER').map((l) => {
    const [name, ttl, , type, ...data] = l.split(/\s+/);
    return { name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') };
  });
  return { status, flags, answers, authority: section('AUTHORITY'), additional: section('ADDITIONAL') };
}
