import type { Host } from '../../testbed/index.js';
import { parseDig, type DigResult } from '../../support/dig.js';

/** Runs the real `dig` inside a test host's namespace, against a server the host can reach. */
export async function digFrom(host: Host, server: string, port: number, name: string, type: string, extra: string[] = []): Promise<DigResult> {
  const r = await host.exec('dig', [`@${server}`, '-p', String(port), name, type, '+time=2', '+tries=1', '+nocookie', ...extra]);
  if (r.code !== 0) throw new Error(`dig ${name} ${type} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return parseDig(r.stdout);
}
