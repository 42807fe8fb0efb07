import { hostname } from 'node:os';
import type { AggregatorOptions } from '../aggregator/server.js';
import type { StoreSpec } from '../aggregator/catalog/open-store.js';
import { parseEtcdUrl } from '../aggregator/catalog/etcd/etcd-url.js';
import type { UdpMode } from '../shared/dns/udp.js';
import { parseDuration, parseHostPort, parseHostPortText, readFlagFile, UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { dnsAllowFlag, dnsAllowList, tokenFlag } from './common-flags.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, DEFAULT_MAX_STREAMS } from '../aggregator/http/server-limits.js';
import { readSecretLines, type Warn } from './secret-file.js';
import { AgentTokensError, readAgentTokens, type AgentTokensFile } from '../aggregator/agent-tokens.js';

/** Bounds of --ui-sample-interval: at 1 s an hour is 3,600 samples; past 10 m an hour is too few to plot. */
const UI_SAMPLE_MIN = '1s';
const UI_SAMPLE_MAX = '10m';

export const aggregatorFlags: FlagSpec[] = [
  { name: 'http', kind: 'string', env: 'PORTOLAN_HTTP', default: '0.0.0.0:8500', help: 'HTTP API and agent WebSocket listen address' },
  { name: 'dns', kind: 'string', env: 'PORTOLAN_DNS', default: '0.0.0.0:8600', help: 'DNS listen address (UDP and TCP)' },
  { name: 'domain', kind: 'string', env: 'PORTOLAN_DOMAIN', default: 'consul', help: 'DNS domain served' },
  { name: 'alt-domain', kind: 'list', env: 'PORTOLAN_ALT_DOMAIN', help: 'further DNS domains answered like --domain' },
  { name: 'datacenter', kind: 'string', env: 'PORTOLAN_DATACENTER', default: 'dc1', help: 'datacenter name in the API and DNS names' },
  { name: 'name', kind: 'string', env: 'PORTOLAN_NAME', help: "the aggregator's own node name in /v1/agent/self (default: hostname)" },
  { name: 'dns-ttl', kind: 'duration', env: 'PORTOLAN_DNS_TTL', default: '0s', help: 'TTL of service records (per service: SERVICE_DNS_TTL)' },
  { name: 'node-ttl', kind: 'duration', env: 'PORTOLAN_NODE_TTL', default: '0s', help: 'TTL of node and addr records' },
  { name: 'recursor', kind: 'string', env: 'PORTOLAN_RECURSOR', help: 'HOST:PORT to forward names outside the domain to (else REFUSED)' },
  { name: 'dns-udp-max', kind: 'integer', env: 'PORTOLAN_DNS_UDP_MAX', default: '1232', help: 'cap on the EDNS0 UDP answer size in bytes' },
  dnsAllowFlag,
  { name: 'dns-udp', kind: 'string', env: 'PORTOLAN_DNS_UDP', default: 'auto', choices: ['auto', 'batch', 'dgram'] satisfies UdpMode[], help: 'batch: recvmmsg/sendmmsg addon; dgram: Node socket; auto: batch where built' },
  { ...tokenFlag, help: 'shared secret agents must present; it lets an agent register any node name' },
  { name: 'agent-tokens', kind: 'string', env: 'PORTOLAN_AGENT_TOKENS', help: 'file of "NODE-NAME TOKEN" lines: each token lets its agent register that node name only (re-read on SIGHUP)' },
  { name: 'tls-cert', kind: 'string', env: 'PORTOLAN_TLS_CERT', help: 'PEM certificate file: serve HTTPS and WSS (with --tls-key)' },
  { name: 'tls-key', kind: 'string', env: 'PORTOLAN_TLS_KEY', help: 'PEM private key file for --tls-cert' },
  { name: 'client-ca', kind: 'string', env: 'PORTOLAN_CLIENT_CA', help: 'PEM CA file: agents must present a client certificate chaining to it whose DNS name (or CN) is their node name (needs --tls-cert)' },
  { name: 'max-payload', kind: 'integer', env: 'PORTOLAN_MAX_PAYLOAD', default: '1048576', help: 'largest agent message in bytes' },
  { name: 'http-max-conns', kind: 'integer', env: 'PORTOLAN_HTTP_MAX_CONNS', default: String(DEFAULT_MAX_CONNECTIONS), help: 'open HTTP connections (agents, watchers, streams) past which new ones are refused' },
  { name: 'http-max-conns-per-client', kind: 'integer', env: 'PORTOLAN_HTTP_MAX_CONNS_PER_CLIENT', default: String(DEFAULT_MAX_CONNECTIONS_PER_CLIENT), help: 'open HTTP connections from one client address past which new ones get 429 (0: no limit; a proxy or NAT in front is one address)' },
  { name: 'api-token', kind: 'list', env: 'PORTOLAN_API_TOKEN', help: 'HTTP API and UI need one of these tokens (X-Consul-Token, Authorization: Bearer or ?token=); repeat or comma-separate for several' },
  { name: 'api-token-file', kind: 'string', env: 'PORTOLAN_API_TOKEN_FILE', help: 'file of further --api-token values, one per line (# comments)' },
  { name: 'allow-unauthenticated-writes', kind: 'boolean', env: 'PORTOLAN_ALLOW_UNAUTHENTICATED_WRITES', default: 'false', help: 'without --api-token, accept /v1/catalog/register, /deregister and /v1/portolan/maintenance (drain) from anyone (else refused 403)' },
  { name: 'metrics-token', kind: 'string', env: 'PORTOLAN_METRICS_TOKEN', help: '/metrics needs this token (Authorization: Bearer) instead of an --api-token' },
  { name: 'max-event-streams', kind: 'integer', env: 'PORTOLAN_MAX_EVENT_STREAMS', default: String(DEFAULT_MAX_STREAMS), help: 'open /v1/portolan/events streams (UI tabs) past which new ones get 429' },
  { name: 'heartbeat', kind: 'duration', env: 'PORTOLAN_HEARTBEAT', default: '1s', help: 'agent ping interval' },
  { name: 'suspect-after', kind: 'duration', env: 'PORTOLAN_SUSPECT_AFTER', default: '3s', help: "silence after which an agent's node turns critical" },
  { name: 'reap-after', kind: 'duration', env: 'PORTOLAN_REAP_AFTER', default: '60s', help: 'time a lost node stays (critical) before it is removed' },
  { name: 'ui-sample-interval', kind: 'duration', env: 'PORTOLAN_UI_SAMPLE_INTERVAL', default: '10s', help: `how often the web UI's plots take a sample of the aggregator's counters (an hour of samples is kept; ${UI_SAMPLE_MIN} to ${UI_SAMPLE_MAX})` },
  { name: 'store', kind: 'string', env: 'PORTOLAN_STORE', default: 'memory', help: 'where the catalog is kept: memory, or etcd://HOST:PORT[,HOST:PORT…] (etcds:// for TLS) shared by several aggregators' },
  { name: 'store-prefix', kind: 'string', env: 'PORTOLAN_STORE_PREFIX', help: 'etcd key prefix (default /portolan/<datacenter>/)' },
  { name: 'etcd-ca', kind: 'string', env: 'PORTOLAN_ETCD_CA', help: "PEM CA certificate file etcd's certificate must chain to" },
  { name: 'etcd-cert', kind: 'string', env: 'PORTOLAN_ETCD_CERT', help: 'PEM client certificate file for etcd (with --etcd-key)' },
  { name: 'etcd-key', kind: 'string', env: 'PORTOLAN_ETCD_KEY', help: 'PEM private key file for --etcd-cert' },
  { name: 'etcd-user', kind: 'string', env: 'PORTOLAN_ETCD_USER', help: 'etcd user name (with --etcd-password)' },
  { name: 'etcd-password', kind: 'string', env: 'PORTOLAN_ETCD_PASSWORD', help: 'etcd password (prefer the environment variable)' },
  { name: 'store-compact-every', kind: 'duration', env: 'PORTOLAN_STORE_COMPACT_EVERY', default: '5m', help: 'etcd: compact history older than this, one aggregator at a time (0s: never; leave it to etcd --auto-compaction-retention)' },
];

/** `warn` reports what is wrong but not fatal in the options (a token file others can read). */
export function aggregatorOptions(v: Record<string, FlagValue>, warn: Warn = () => undefined): AggregatorOptions {
  const dnsTtlMs = v['dns-ttl'] as number;
  const nodeTtlMs = v['node-ttl'] as number;
  return {
    http: parseHostPort('http', v.http as string),
    dns: parseHostPort('dns', v.dns as string),
    domain: normalizeDomain(v.domain as string),
    altDomains: ((v['alt-domain'] as string[] | undefined) ?? []).map(normalizeDomain),
    datacenter: v.datacenter as string,
    nodeName: (v.name as string | undefined) ?? hostname(),
    serviceTtl: Math.floor(dnsTtlMs / 1000),
    nodeTtl: Math.floor(nodeTtlMs / 1000),
    recursor: v.recursor === undefined ? undefined : parseHostPortText('recursor', v.recursor as string),
    udpMaxSize: Math.max(512, v['dns-udp-max'] as number),
    dnsUdp: v['dns-udp'] as UdpMode,
    dnsAllow: dnsAllowList(v),
    token: v.token as string | undefined,
    agentTokens: agentTokensFile(v['agent-tokens'] as string | undefined),
    maxPayload: v['max-payload'] as number,
    httpMaxConns: v['http-max-conns'] as number,
    httpMaxConnsPerClient: v['http-max-conns-per-client'] as number,
    apiTokens: apiTokens(v, warn),
    metricsToken: v['metrics-token'] as string | undefined,
    allowUnauthenticatedWrites: v['allow-unauthenticated-writes'] as boolean,
    maxEventStreams: v['max-event-streams'] as number,
    heartbeatMs: v.heartbeat as number,
    suspectAfterMs: v['suspect-after'] as number,
    reapAfterMs: v['reap-after'] as number,
    uiSampleIntervalMs: uiSampleInterval(v['ui-sample-interval'] as number),
    tls: tlsFiles(v['tls-cert'] as string | undefined, v['tls-key'] as string | undefined, v['client-ca'] as string | undefined),
    store: storeSpec(v),
  };
}

function uiSampleInterval(ms: number): number {
  const [min, max] = [UI_SAMPLE_MIN, UI_SAMPLE_MAX].map((text) => parseDuration({ name: 'ui-sample-interval' }, text));
  if (ms < min! || ms > max!) throw new UsageError(`--ui-sample-interval must be between ${UI_SAMPLE_MIN} and ${UI_SAMPLE_MAX}, got ${ms} ms`);
  return ms;
}

function apiTokens(v: Record<string, FlagValue>, warn: Warn): string[] | undefined {
  const file = v['api-token-file'] as string | undefined;
  const fromFile = file === undefined ? [] : readSecretLines('api-token-file', file, warn);
  if (file !== undefined && fromFile.length === 0) throw new UsageError(`--api-token-file: no token in ${file}`);
  const tokens = [...((v['api-token'] as string[] | undefined) ?? []), ...fromFile];
  return tokens.length > 0 ? tokens : undefined;
}

function storeSpec(v: Record<string, FlagValue>): StoreSpec {
  const url = v.store as string;
  const etcdOnly = ['store-prefix', 'etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password'].filter((f) => v[f] !== undefined);
  if (url === 'memory') {
    if (etcdOnly.length > 0) throw new UsageError(`--${etcdOnly[0]} needs --store etcd://…`);
    return { kind: 'memory' };
  }
  let parsed: ReturnType<typeof parseEtcdUrl>;
  try {
    parsed = parseEtcdUrl(url);
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message} (or memory)`);
  }
  const [cert, key, user, password] = ['etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password'].map((f) => v[f] as string | undefined);
  if (!cert !== !key) throw new UsageError('--etcd-cert and --etcd-key go together');
  if (!user !== !password) throw new UsageError('--etcd-user and --etcd-password go together');
  const ca = v['etcd-ca'] as string | undefined;
  const tls = ca || cert ? { ca: ca && readFlagFile('etcd-ca', ca), cert: cert && readFlagFile('etcd-cert', cert), key: key && readFlagFile('etcd-key', key) } : undefined;
  if (tls && !parsed.tls) throw new UsageError('--etcd-ca/--etcd-cert need an etcds:// store URL');
  return {
    kind: 'etcd',
    endpoints: parsed.endpoints,
    prefix: (v['store-prefix'] as string | undefined) ?? `/portolan/${v.datacenter as string}/`,
    tls: parsed.tls ? (tls ?? {}) : undefined,
    auth: user && password ? { username: user, password } : undefined,
    compactEveryMs: v['store-compact-every'] as number,
  };
}

function tlsFiles(certFile: string | undefined, keyFile: string | undefined, clientCaFile: string | undefined): AggregatorOptions['tls'] {
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new UsageError('--client-ca needs --tls-cert and --tls-key (client certificates are checked on WSS)');
    return undefined;
  }
  if (!certFile || !keyFile) throw new UsageError('--tls-cert and --tls-key go together');
  const files = { cert: readFlagFile('tls-cert', certFile), key: readFlagFile('tls-key', keyFile) };
  return clientCaFile ? { ...files, clientCa: readFlagFile('client-ca', clientCaFile) } : files;
}

/** The token file read now, so that a bad one stops the start with its line number. */
function agentTokensFile(path: string | undefined): AgentTokensFile | undefined {
  if (path === undefined) return undefined;
  try {
    return readAgentTokens(path);
  } catch (err) {
    if (err instanceof AgentTokensError) throw new UsageError(`--agent-tokens: ${err.message}`);
    throw err;
  }
}

function normalizeDomain(d: string): string {
  return d.toLowerCase().replace(/^\.+|\.+$/g, '');
}
