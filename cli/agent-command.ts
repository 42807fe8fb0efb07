import { isIPv6 } from 'node:net';
import { agentDefaults, type AgentOptions } from '../agent/options.js';
import { AggregatorListError, parseAggregatorList } from '../agent/aggregator-list.js';
import { parseHostPort, parseHostPortText, readFlagFile, UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { dnsAllowFlag, dnsAllowList, tokenFlag } from './common-flags.js';
import { canonicalIPv6 } from '../shared/net-address.js';

export const agentFlags: FlagSpec[] = [
  { name: 'aggregator', kind: 'string', env: 'PORTOLAN_AGGREGATOR', help: 'aggregator URL, ws://HOST:8500 (wss:// with TLS); several, comma-separated, for failover (a name with several addresses counts as each)' },
  { name: 'docker', kind: 'string', env: 'PORTOLAN_DOCKER', help: 'Docker endpoint, unix:///path or tcp://host:port (default: DOCKER_HOST, else unix:///var/run/docker.sock)' },
  { name: 'ip', kind: 'string', env: 'PORTOLAN_IP', aliases: ['ip'], help: 'host IP to advertise (default: detected)' },
  { name: 'ip6', kind: 'string', env: 'PORTOLAN_IP6', help: "host IPv6 address to advertise besides --ip (AAAA, lan_ipv6/wan_ipv6) (default: the address the aggregator sees an IPv6 connection from, else the global IPv6 of the IPv6 default route's interface)" },
  { name: 'node', kind: 'string', env: 'PORTOLAN_NODE', default: agentDefaults.node, help: 'node name of this host in the catalog' },
  { name: 'advertise', kind: 'string', env: 'PORTOLAN_ADVERTISE', choices: ['auto', 'host', 'container'], help: 'what a port is registered at: host (host IP + published port), container (container IP + container port), auto (published: host; else container, when its network reaches other hosts: swarm overlay, macvlan, ipvlan, routed bridge) (default: auto)' },
  { name: 'internal', kind: 'boolean', env: 'PORTOLAN_INTERNAL', default: 'false', aliases: ['internal'], help: "registrator's name for --advertise container" },
  { name: 'network', kind: 'string', env: 'PORTOLAN_NETWORK', help: 'the Docker network whose container IP is used when a container sits on several (SERVICE_NETWORK overrides)' },
  { name: 'explicit', kind: 'boolean', env: 'PORTOLAN_EXPLICIT', default: 'false', aliases: ['explicit'], help: 'only register ports with SERVICE_NAME or SERVICE_<port>_NAME' },
  { name: 'tags', kind: 'list', env: 'PORTOLAN_TAGS', aliases: ['tags'], help: 'tags added to every service' },
  { name: 'use-ip-from-label', kind: 'string', env: 'PORTOLAN_USE_IP_FROM_LABEL', aliases: ['useIpFromLabel'], help: 'container label whose value is the IP to register' },
  { name: 'resync', kind: 'integer', env: 'PORTOLAN_RESYNC', default: '0', aliases: ['resync'], help: 'also re-list all containers every N seconds (0: only after event-stream loss)' },
  { name: 'deregister', kind: 'string', env: 'PORTOLAN_DEREGISTER', default: agentDefaults.deregister, aliases: ['deregister'], choices: ['always', 'on-success'], help: 'on-success: a container that exited non-zero stays registered as critical' },
  { name: 'deregister-on', kind: 'string', env: 'PORTOLAN_DEREGISTER_ON', default: agentDefaults.deregisterOn, choices: ['stop', 'die'], help: 'stop: withdraw on stop/kill so clients drain first; die: only when the process exits' },
  { name: 'metrics', kind: 'string', env: 'PORTOLAN_METRICS', help: 'serve Prometheus metrics on HOST:PORT (/metrics)' },
  tokenFlag,
  { name: 'ca', kind: 'string', env: 'PORTOLAN_CA', help: 'PEM CA certificate file a wss:// aggregator must chain to (private CA)' },
  { name: 'tls-cert', kind: 'string', env: 'PORTOLAN_TLS_CERT', help: "PEM client certificate file presented to a wss:// aggregator's --client-ca (with --tls-key); its DNS name or CN must be --node" },
  { name: 'tls-key', kind: 'string', env: 'PORTOLAN_TLS_KEY', help: 'PEM private key file for --tls-cert' },
  { name: 'local-dns', kind: 'string', env: 'PORTOLAN_LOCAL_DNS', help: 'answer DNS on this host at HOST:PORT[,HOST:PORT…], or auto: port 53 on every Docker bridge network\'s gateway (default: off)' },
  { name: 'recursor', kind: 'string', env: 'PORTOLAN_RECURSOR', help: 'HOST:PORT the local DNS forwards names outside the domain to (default: the first nameserver in /etc/resolv.conf that is not the local DNS)' },
  { ...dnsAllowFlag, help: 'local DNS: answer only askers in these networks (CIDR or address); the others get REFUSED (default: everyone)' },
  { name: 'split-horizon', kind: 'boolean', env: 'PORTOLAN_SPLIT_HORIZON', default: String(agentDefaults.splitHorizon), help: 'local DNS: a container sharing a network with a local instance gets its container IP and port' },
  { name: 'domain', kind: 'string', env: 'PORTOLAN_DOMAIN', default: agentDefaults.domain, help: 'DNS domain the local DNS answers (as the aggregator\'s --domain)' },
  { name: 'local-api', kind: 'string', env: 'PORTOLAN_LOCAL_API', help: "serve Consul's agent API for this host on HOST:PORT (register, checks, maintenance; other /v1 requests forwarded to the aggregator), e.g. 127.0.0.1:8500 (default: off)" },
  { name: 'data-dir', kind: 'string', env: 'PORTOLAN_DATA_DIR', help: "keep the local API's registrations, check state and maintenance in DIR across restarts (default: in memory only)" },
];

export function agentOptions(v: Record<string, FlagValue>): AgentOptions {
  const aggregator = v.aggregator as string | undefined;
  if (!aggregator) throw new UsageError('--aggregator (or PORTOLAN_AGGREGATOR) is required, e.g. ws://10.0.0.1:8500');
  for (const entry of aggregator.split(',').map((e) => e.trim())) {
    if (entry !== '' && !/^wss?:\/\//.test(entry)) throw new UsageError(`--aggregator must be a ws:// or wss:// URL, got "${entry}"${entry === aggregator ? '' : ` in "${aggregator}"`}`);
  }
  try {
    parseAggregatorList(aggregator);
  } catch (err) {
    if (err instanceof AggregatorListError) throw new UsageError(`--aggregator: ${err.message}`);
    throw err;
  }
  return {
    aggregator,
    docker: v.docker as string | undefined,
    ip: v.ip as string | undefined,
    ip6: ipv6Flag(v.ip6 as string | undefined),
    node: v.node as string,
    advertise: advertiseMode(v),
    network: v.network as string | undefined,
    explicit: v.explicit as boolean,
    tags: (v.tags as string[] | undefined) ?? [],
    useIpFromLabel: v['use-ip-from-label'] as string | undefined,
    resyncSeconds: v.resync as number,
    deregister: v.deregister as AgentOptions['deregister'],
    deregisterOn: v['deregister-on'] as AgentOptions['deregisterOn'],
    metrics: v.metrics === undefined ? undefined : parseHostPort('metrics', v.metrics as string),
    token: v.token as string | undefined,
    ca: v.ca === undefined ? undefined : readFlagFile('ca', v.ca as string),
    clientCertificate: clientCertificate(v, aggregator),
    localDns: localDnsAddresses(v['local-dns'] as string | undefined),
    recursor: v.recursor === undefined ? undefined : parseHostPortText('recursor', v.recursor as string),
    splitHorizon: v['split-horizon'] as boolean,
    dnsAllow: dnsAllowList(v),
    domain: v.domain as string,
    localApi: v['local-api'] === undefined ? undefined : parseHostPort('local-api', v['local-api'] as string),
    dataDir: v['data-dir'] as string | undefined,
  };
}

/** --advertise, or `container` for registrator's --internal; the two must not disagree. */
function advertiseMode(v: Record<string, FlagValue>): AgentOptions['advertise'] {
  const chosen = v.advertise as AgentOptions['advertise'] | undefined;
  if (v.internal !== true) return chosen ?? agentDefaults.advertise;
  if (chosen !== undefined && chosen !== 'container') throw new UsageError(`--internal means --advertise container, but --advertise is ${chosen}`);
  return 'container';
}

/** --ip6 checked: an IPv6 literal (brackets allowed), given back in RFC 5952 form. */
function ipv6Flag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const address = text.replace(/^\[(.*)\]$/, '$1');
  if (!isIPv6(address) || address.includes('%')) throw new UsageError(`--ip6 must be an IPv6 address such as fd00::5, got "${text}"`);
  return canonicalIPv6(address);
}

/** --tls-cert and --tls-key, read; only wss:// carries them. */
function clientCertificate(v: Record<string, FlagValue>, aggregator: string): AgentOptions['clientCertificate'] {
  const [cert, key] = [v['tls-cert'] as string | undefined, v['tls-key'] as string | undefined];
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new UsageError('--tls-cert and --tls-key go together');
  const plain = aggregator.split(',').map((e) => e.trim()).find((e) => e.startsWith('ws://'));
  if (plain) throw new UsageError(`--tls-cert is sent only over wss://, but --aggregator has ${plain}`);
  return { cert: readFlagFile('tls-cert', cert), key: readFlagFile('tls-key', key) };
}

function localDnsAddresses(text: string | undefined): AgentOptions['localDns'] {
  if (text === undefined || text.trim() === '') return undefined;
  if (text.trim() === 'auto') return 'auto';
  return text.split(',').map((entry) => parseHostPort('local-dns', entry.trim()));
}
