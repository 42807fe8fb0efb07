import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { TEST_IMAGE, type Host } from '../../testbed/index.js';
import { digFrom } from './dig.js';

/** What the fault tests compare: one registration as `node|container name|published port`. */
export type RegistrationKey = string;

export interface CatalogServiceEntry {
  Node: string;
  ServiceID: string;
  ServiceName: string;
  ServiceAddress: string;
  ServicePort: number;
  CreateIndex: number;
  ModifyIndex: number;
}

interface NodeServices {
  Services: Record<string, { ID: string; Port?: number }>;
}

/** Runs busybox httpd as a registered service publishing container port 80 on `port`. */
export function runWeb(host: Host, name: string, port: number, service = 'web', extra: string[] = []): Promise<string> {
  return host.docker(['run', '-d', '--name', name, '-e', `SERVICE_NAME=${service}`, '-p', `${port}:80`, ...extra, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
}

/** A JSON GET on the aggregator from the root namespace (it listens on 0.0.0.0, so loopback reaches it). */
export async function getJson<T>(httpPort: number, path: string, timeoutMs = 5000): Promise<{ body: T; index: number }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return { body: (await res.json()) as T, index: Number(res.headers.get('x-consul-index')) };
}

export async function catalogService(httpPort: number, name: string, query = ''): Promise<CatalogServiceEntry[]> {
  return (await getJson<CatalogServiceEntry[]>(httpPort, `/v1/catalog/service/${name}${query}`)).body;
}

/** Every registration of every node, as keys; the container name is the middle of the ServiceID `node:name:port`. */
export async function catalogKeys(httpPort: number): Promise<Set<RegistrationKey>> {
  const { body: nodes } = await getJson<Array<{ Node: string }>>(httpPort, '/v1/catalog/nodes');
  const keys = new Set<RegistrationKey>();
  for (const { Node } of nodes) {
    const { body } = await getJson<NodeServices>(httpPort, `/v1/catalog/node/${Node}`);
    for (const s of Object.values(body.Services)) keys.add(`${Node}|${s.ID.split(':')[1]}|${s.Port ?? 0}`);
  }
  return keys;
}

/** The running containers of a host with their published TCP ports, as keys (`docker ps`). */
export async function dockerKeys(host: Host): Promise<Set<RegistrationKey>> {
  const out = await host.docker(['ps', '--format', '{{.Names}}\t{{.Ports}}']);
  const keys = new Set<RegistrationKey>();
  for (const line of out.split('\n').filter(Boolean)) {
    const [name, ports = ''] = line.split('\t');
    for (const m of ports.matchAll(/:(\d+)->\d+\/tcp/g)) keys.add(`${host.name}|${name}|${m[1]}`);
  }
  return keys;
}

export async function dockerKeysOf(hosts: readonly Host[]): Promise<Set<RegistrationKey>> {
  const all = await Promise.all(hosts.map(dockerKeys));
  return new Set(all.flatMap((s) => [...s]));
}

/** Sorted differences, for an assertion message that says what is stale and what is lost. */
export function diffKeys(catalog: Set<RegistrationKey>, docker: Set<RegistrationKey>): { stale: string[]; lost: string[] } {
  return {
    stale: [...catalog].filter((k) => !docker.has(k)).sort(),
    lost: [...docker].filter((k) => !catalog.has(k)).sort(),
  };
}

export function sameKeys(a: Set<RegistrationKey>, b: Set<RegistrationKey>): boolean {
  return a.size === b.size && [...a].every((k) => b.has(k));
}

/** The ports in the SRV records a host gets for a name from the aggregator's DNS, sorted (over TCP: no truncation). */
export async function dnsPorts(from: Host, server: string, dnsPort: number, name: string): Promise<number[]> {
  const r = await digFrom(from, server, dnsPort, name, 'SRV', ['+tcp']);
  return r.answer.filter((a) => a.type === 'SRV').map((a) => Number(a.data.split(' ')[2])).sort((x, y) => x - y);
}

/** Polls until the probe holds and returns the elapsed time since `since` (performance.now()). */
export async function msUntil(what: string, probe: () => Promise<boolean>, since: number, timeoutMs: number, everyMs = 50): Promise<number> {
  const deadline = since + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return Math.round(performance.now() - since);
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A port free for both TCP and UDP on all addresses (the aggregator's HTTP and DNS use both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '0.0.0.0', () => {
        const { port: p } = srv.address() as { port: number };
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const sock = createSocket('udp4');
      sock.once('error', () => resolve(false));
      sock.bind(port, '0.0.0.0', () => sock.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}
