import http from 'node:http';
import { parseHostPort, UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { joinHostPort } from '../shared/net-address.js';

/**
 * `portolan maint` and `portolan services`: small clients of an agent's local API (`portolan
 * agent --local-api`), as `consul maint` and `consul catalog services` are of a Consul agent.
 * They print for people and exit 0, 1 (the API said no, or cannot be reached) or 2 (usage).
 */

const localApiFlag: FlagSpec = {
  name: 'local-api',
  kind: 'string',
  env: 'PORTOLAN_LOCAL_API',
  default: '127.0.0.1:8500',
  help: "the agent's local API, HOST:PORT (its --local-api)",
};

export const maintFlags: FlagSpec[] = [
  localApiFlag,
  { name: 'enable', kind: 'boolean', env: 'PORTOLAN_MAINT_ENABLE', default: 'false', help: 'enter maintenance mode (the node, or --service)' },
  { name: 'disable', kind: 'boolean', env: 'PORTOLAN_MAINT_DISABLE', default: 'false', help: 'leave maintenance mode (the node, or --service)' },
  { name: 'service', kind: 'string', env: 'PORTOLAN_MAINT_SERVICE', help: 'a service ID of this host instead of the whole node' },
  { name: 'reason', kind: 'string', env: 'PORTOLAN_MAINT_REASON', help: 'why, shown as the maintenance check\'s Notes' },
];

export const servicesFlags: FlagSpec[] = [
  localApiFlag,
  { name: 'tags', kind: 'boolean', env: 'PORTOLAN_SERVICES_TAGS', default: 'false', help: 'also print each service\'s tags' },
  { name: 'node', kind: 'string', env: 'PORTOLAN_SERVICES_NODE', help: 'only the services of this node' },
];

/** Where the output goes; the commands never write anywhere else. */
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The API answered with an error status, or could not be reached: exit 1 with its text. */
class ApiError extends Error {}

export async function maint(v: Record<string, FlagValue>, io: Output): Promise<number> {
  const [enable, disable] = [v.enable as boolean, v.disable as boolean];
  if (enable && disable) throw new UsageError('only one of --enable or --disable may be given');
  const service = v.service as string | undefined;
  const reason = v.reason as string | undefined;
  if (!enable && !disable && (service !== undefined || reason !== undefined)) throw new UsageError('--service and --reason go with --enable or --disable');
  return run(io, async () => {
    const api = new LocalApi(v);
    if (!enable && !disable) return io.out(await maintenanceListing(api));
    const params = new URLSearchParams({ enable: String(enable) });
    if (reason !== undefined) params.set('reason', reason);
    const path = service === undefined ? '/v1/agent/maintenance' : `/v1/agent/service/maintenance/${encodeURIComponent(service)}`;
    await api.call('PUT', `${path}?${params}`);
    const what = service === undefined ? 'Node' : 'Service';
    io.out(`${what} ${enable ? 'entered' : 'left'} maintenance mode${service === undefined ? '' : `: ${service}`}\n`);
  });
}

export async function services(v: Record<string, FlagValue>, io: Output): Promise<number> {
  return run(io, async () => {
    const api = new LocalApi(v);
    const node = v.node as string | undefined;
    const byName = node === undefined ? await api.json<Record<string, string[]>>('/v1/catalog/services') : await nodeServices(api, node);
    const names = Object.keys(byName).sort();
    if (!(v.tags as boolean)) return io.out(names.map((n) => `${n}\n`).join(''));
    const width = Math.max(0, ...names.map((n) => n.length));
    io.out(names.map((n) => `${n.padEnd(width)}  ${[...(byName[n] ?? [])].sort().join(',')}`.trimEnd() + '\n').join(''));
  });
}

/** The node's services by name with their tags, from /v1/catalog/node/:node (null: no such node). */
async function nodeServices(api: LocalApi, node: string): Promise<Record<string, string[]>> {
  const answer = await api.json<{ Services: Record<string, { Service: string; Tags: string[] | null }> } | null>(`/v1/catalog/node/${encodeURIComponent(node)}`);
  if (answer === null) throw new ApiError(`no node named "${node}" in the catalog`);
  const out: Record<string, string[]> = {};
  for (const s of Object.values(answer.Services)) out[s.Service] = [...new Set([...(out[s.Service] ?? []), ...(s.Tags ?? [])])];
  return out;
}

interface AgentCheck {
  CheckID: string;
  ServiceID: string;
  Notes: string;
}

/** As `consul maint` lists them: the node's maintenance, then each service's. */
async function maintenanceListing(api: LocalApi): Promise<string> {
  const [checks, self] = await Promise.all([
    api.json<Record<string, AgentCheck>>('/v1/agent/checks'),
    api.json<{ Config: { NodeName: string } }>('/v1/agent/self'),
  ]);
  const lines: string[] = [];
  for (const c of Object.values(checks)) {
    if (c.CheckID === '_node_maintenance') lines.unshift('Node:', `  Name:   ${self.Config.NodeName}`, `  Reason: ${c.Notes}`);
    else if (c.CheckID.startsWith('_service_maintenance:')) lines.push('Service:', `  ID:     ${c.ServiceID}`, `  Reason: ${c.Notes}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

class LocalApi {
  readonly #base: string;

  constructor(v: Record<string, FlagValue>) {
    const { host, port } = parseHostPort('local-api', v['local-api'] as string);
    // The agent binds 0.0.0.0 for a bare port; it is reached on loopback then.
    const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
    this.#base = `http://${joinHostPort(reach, port)}`;
  }

  async call(method: string, path: string): Promise<string> {
    let answer: { status: number; text: string };
    try {
      answer = await request(method, `${this.#base}${path}`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ApiError(`cannot reach the local API at ${this.#base} (${e.code ?? e.message}): is the agent running with --local-api?`);
    }
    if (answer.status >= 300) throw new ApiError(`${this.#base}${path.split('?')[0]}: ${answer.status} ${answer.text.trim()}`);
    return answer.text;
  }

  async json<T>(path: string): Promise<T> {
    return JSON.parse(await this.call('GET', path)) as T;
  }
}

/** node:http rather than fetch, which refuses some ports outright (WHATWG "bad ports": 1, 6000, …). */
function request(method: string, url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 10 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

async function run(io: Output, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    io.err(`${err.message}\n`);
    return 1;
  }
}
