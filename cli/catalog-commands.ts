import { ApiClient, ApiError, columns, runClient, type Output } from './api-client.js';
import { readFlagFile, UsageError, type FlagSpec, type FlagValue } from './flags.js';

/**
 * `portolan members`, `portolan catalog services` and `portolan catalog nodes`: clients of an
 * aggregator's HTTP API (or of an agent's local API, which forwards them), with the flags,
 * environment variables and output of `consul members` and `consul catalog …`, and `--json`
 * for scripts. Exit status 0, 1 (the API said no, or cannot be reached) or 2 (usage).
 */

/** Consul's -http-addr, -token, -token-file, -ca-file, with its CLI's variables. */
export const httpApiFlags: FlagSpec[] = [
  { name: 'http-addr', kind: 'string', env: 'CONSUL_HTTP_ADDR', default: 'http://127.0.0.1:8500', help: "the aggregator's HTTP API (or an agent's --local-api): [http://|https://]HOST:PORT" },
  { name: 'token', kind: 'string', env: 'CONSUL_HTTP_TOKEN', help: "an API token (the aggregator's --api-token), sent as X-Consul-Token" },
  { name: 'token-file', kind: 'string', env: 'CONSUL_HTTP_TOKEN_FILE', help: 'a file holding the API token (instead of --token)' },
  { name: 'ca-file', kind: 'string', env: 'CONSUL_CACERT', help: 'PEM CA certificate file an https:// API must chain to (default: the system CAs)' },
];

const jsonFlag: FlagSpec = { name: 'json', kind: 'boolean', env: 'PORTOLAN_JSON', default: 'false', help: 'print the answer as JSON (for scripts)' };
const nodeMetaFlag: FlagSpec = { name: 'node-meta', kind: 'list', env: 'PORTOLAN_NODE_META', help: 'only nodes with this node meta, key=value (repeat for several)' };

/** The flags of `portolan services` and `portolan catalog services` besides where the API is. */
export const servicesOutputFlags: FlagSpec[] = [
  { name: 'tags', kind: 'boolean', env: 'PORTOLAN_SERVICES_TAGS', default: 'false', help: "also print each service's tags" },
  { name: 'node', kind: 'string', env: 'PORTOLAN_SERVICES_NODE', help: 'only the services of this node' },
  nodeMetaFlag,
  jsonFlag,
];

export const catalogServicesFlags: FlagSpec[] = [...httpApiFlags, ...servicesOutputFlags];

export const catalogNodesFlags: FlagSpec[] = [
  ...httpApiFlags,
  { name: 'detailed', kind: 'boolean', env: 'PORTOLAN_NODES_DETAILED', default: 'false', help: 'also print tagged addresses and node meta' },
  { name: 'service', kind: 'string', env: 'PORTOLAN_NODES_SERVICE', help: 'only nodes providing this service' },
  nodeMetaFlag,
  jsonFlag,
];

export const membersFlags: FlagSpec[] = [
  ...httpApiFlags,
  { name: 'detailed', kind: 'boolean', env: 'PORTOLAN_MEMBERS_DETAILED', default: 'false', help: 'print each member\'s tags (node meta) instead of type, build and datacenter' },
  { name: 'status', kind: 'string', env: 'PORTOLAN_MEMBERS_STATUS', default: '.*', help: 'only members whose status (alive, failed) matches this regular expression' },
  jsonFlag,
];

/** The API client --http-addr, --token (or --token-file) and --ca-file describe. */
export function httpApi(v: Record<string, FlagValue>): ApiClient {
  const addr = v['http-addr'] as string;
  // As Consul's api package: a bare HOST:PORT is http://.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(addr) ? addr : `http://${addr}`;
  let base: URL;
  try {
    base = new URL(withScheme);
  } catch {
    throw new UsageError(`--http-addr must be [http://|https://]HOST:PORT, got "${addr}"`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--http-addr must be an http:// or https:// address, got "${addr}"`);
  const tokenFile = v['token-file'] as string | undefined;
  const token = (v.token as string | undefined) ?? (tokenFile === undefined ? undefined : readFlagFile('token-file', tokenFile).trim());
  const caFile = v['ca-file'] as string | undefined;
  return new ApiClient(base, { token, ca: caFile === undefined ? undefined : readFlagFile('ca-file', caFile) });
}

/** ?node-meta=key:value for each --node-meta key=value, as Consul's CLI turns its flag into the API's parameter. */
function nodeMetaQuery(v: Record<string, FlagValue>): URLSearchParams {
  const query = new URLSearchParams();
  for (const pair of (v['node-meta'] as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--node-meta must be key=value, got "${pair}"`);
    query.append('node-meta', `${pair.slice(0, eq)}:${pair.slice(eq + 1)}`);
  }
  return query;
}

const withQuery = (path: string, query: URLSearchParams) => (query.size === 0 ? path : `${path}?${query}`);

export async function catalogServices(v: Record<string, FlagValue>, io: Output): Promise<number> {
  const api = httpApi(v);
  return runClient(io, () => listServices(api, v, io));
}

/** As `consul catalog services`: names one a line, or with --tags each with its tags. */
export async function listServices(api: ApiClient, v: Record<string, FlagValue>, io: Output): Promise<void> {
  const query = nodeMetaQuery(v);
  const node = v.node as string | undefined;
  const byName = node === undefined ? await api.json<Record<string, string[]>>(withQuery('/v1/catalog/services', query)) : await nodeServices(api, node, query);
  if (v.json as boolean) return io.out(`${JSON.stringify(byName, null, 2)}\n`);
  const names = Object.keys(byName).sort();
  if (names.length === 0) return io.err('No services match the given query - try expanding your search.\n');
  if (!(v.tags as boolean)) return io.out(names.map((n) => `${n}\n`).join(''));
  // Consul's tabwriter: the names padded to the widest, then six spaces.
  const width = Math.max(...names.map((n) => n.length)) + 6;
  io.out(names.map((n) => `${n.padEnd(width)}${[...(byName[n] ?? [])].sort().join(',')}`.trimEnd() + '\n').join(''));
}

/** The node's services by name with their tags, from /v1/catalog/node/:node (null: no such node). */
async function nodeServices(api: ApiClient, node: string, query: URLSearchParams): Promise<Record<string, string[]>> {
  const answer = await api.json<{ Services: Record<string, { Service: string; Tags: string[] | null }> } | null>(withQuery(`/v1/catalog/node/${encodeURIComponent(node)}`, query));
  if (answer === null) throw new ApiError(`no node named "${node}" in the catalog`);
  const out: Record<string, string[]> = {};
  for (const s of Object.values(answer.Services)) out[s.Service] = [...new Set([...(out[s.Service] ?? []), ...(s.Tags ?? [])])];
  return out;
}

/** A node of /v1/catalog/nodes (structs.Node). */
interface CatalogNode {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string> | null;
  Meta: Record<string, string> | null;
}

/** An entry of /v1/catalog/service/:service, as much of it as names its node. */
interface ServiceNode {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string> | null;
  NodeMeta: Record<string, string> | null;
}

export async function catalogNodes(v: Record<string, FlagValue>, io: Output): Promise<number> {
  const api = httpApi(v);
  const query = nodeMetaQuery(v);
  return runClient(io, async () => {
    const service = v.service as string | undefined;
    const nodes = service === undefined ? await api.json<CatalogNode[]>(withQuery('/v1/catalog/nodes', query)) : await serviceNodes(api, service, query);
    if (v.json as boolean) return io.out(`${JSON.stringify(nodes, null, 2)}\n`);
    if (nodes.length === 0) return io.err('No nodes match the given query - try expanding your search.\n');
    io.out(columns([nodesHeader(v.detailed as boolean), ...nodes.map((n) => nodeRow(n, v.detailed as boolean))]));
  });
}

/** The nodes of a service's instances, each once (Consul's CLI would list a node once per instance). */
async function serviceNodes(api: ApiClient, service: string, query: URLSearchParams): Promise<CatalogNode[]> {
  const entries = await api.json<ServiceNode[]>(withQuery(`/v1/catalog/service/${encodeURIComponent(service)}`, query));
  const byName = new Map<string, CatalogNode>();
  for (const e of entries) {
    if (!byName.has(e.Node)) byName.set(e.Node, { ID: e.ID, Node: e.Node, Address: e.Address, Datacenter: e.Datacenter, TaggedAddresses: e.TaggedAddresses, Meta: e.NodeMeta });
  }
  return [...byName.values()];
}

const nodesHeader = (detailed: boolean) => (detailed ? ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta'] : ['Node', 'ID', 'Address', 'DC']);

/** As Consul's catalog.NodeRow: the ID cut to its first group unless --detailed. */
function nodeRow(n: CatalogNode, detailed: boolean): string[] {
  if (detailed) return [n.Node, n.ID, n.Address, n.Datacenter, keyValues(n.TaggedAddresses, ', '), keyValues(n.Meta, ', ')];
  const dash = n.ID.indexOf('-');
  return [n.Node, dash > 0 ? n.ID.slice(0, dash) : n.ID, n.Address, n.Datacenter];
}

/** key=value pairs sorted by key, as Consul's mapToKV. */
function keyValues(m: Record<string, string> | null, joiner: string): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${m![k]}`)
    .join(joiner);
}

/** A row of `portolan members`, and an element of its --json array. */
export interface Member {
  Node: string;
  Address: string;
  /** serfHealth passing: alive; critical (silent past --suspect-after, until reaped): failed. */
  Status: 'alive' | 'failed';
  /** The aggregator answering is the server; every agent's host a client. */
  Type: 'server' | 'client';
  /** portolan version: the aggregator's, or the agent's (node meta portolan-agent-version). */
  Build: string;
  Datacenter: string;
  /** Serf tags of the server, node meta of a client. */
  Tags: Record<string, string>;
}

interface AgentSelf {
  Config: { Datacenter: string; NodeName: string; Server: boolean; Version: string };
  Member: { Addr: string; Tags: Record<string, string> };
}

interface HealthCheck {
  Node: string;
  Status: string;
}

/** The hosts (nodes with an agent's serfHealth; external nodes have none) and the aggregator. */
export async function fetchMembers(api: ApiClient): Promise<Member[]> {
  const [self, nodes, serf] = await Promise.all([
    api.json<AgentSelf>('/v1/agent/self'),
    api.json<CatalogNode[]>('/v1/catalog/nodes'),
    api.json<HealthCheck[]>(`/v1/health/state/any?${new URLSearchParams({ filter: 'CheckID == "serfHealth"' })}`),
  ]);
  const status = new Map(serf.map((c) => [c.Node, c.Status === 'passing' ? ('alive' as const) : ('failed' as const)]));
  const clients = nodes.flatMap((n): Member[] => {
    const s = status.get(n.Node);
    if (s === undefined) return [];
    const meta = n.Meta ?? {};
    return [{ Node: n.Node, Address: n.Address, Status: s, Type: 'client', Build: meta['portolan-agent-version'] ?? '', Datacenter: n.Datacenter, Tags: meta }];
  });
  // An agent's local API answers /v1/agent/self for its own host, which is one of the clients.
  const server: Member[] = self.Config.Server
    ? [{ Node: self.Config.NodeName, Address: self.Member.Addr, Status: 'alive', Type: 'server', Build: self.Config.Version, Datacenter: self.Config.Datacenter, Tags: self.Member.Tags }]
    : [];
  return [...server, ...clients.sort((a, b) => (a.Node < b.Node ? -1 : a.Node > b.Node ? 1 : 0))];
}

export async function members(v: Record<string, FlagValue>, io: Output): Promise<number> {
  const api = httpApi(v);
  let statusRe: RegExp;
  try {
    statusRe = new RegExp(v.status as string);
  } catch (err) {
    throw new UsageError(`--status: ${(err as Error).message}`);
  }
  let matched = 0;
  const code = await runClient(io, async () => {
    const shown = (await fetchMembers(api)).filter((m) => statusRe.test(m.Status));
    matched = shown.length;
    if (v.json as boolean) return io.out(`${JSON.stringify(shown, null, 2)}\n`);
    if (shown.length > 0) io.out(columns(membersTable(shown, v.detailed as boolean)));
  });
  // As `consul members`: exit 2 when no member matches (-status); --json prints [] and succeeds.
  return code === 0 && matched === 0 && !(v.json as boolean) ? 2 : code;
}

/** `consul members` columns (Node, Address, Status, Type, Build, DC), or with --detailed its Tags. */
function membersTable(list: readonly Member[], detailed: boolean): string[][] {
  if (detailed) return [['Node', 'Address', 'Status', 'Tags'], ...list.map((m) => [m.Node, m.Address, m.Status, keyValues(m.Tags, ',')])];
  return [['Node', 'Address', 'Status', 'Type', 'Build', 'DC'], ...list.map((m) => [m.Node, m.Address, m.Status, m.Type, m.Build, m.Datacenter])];
}
