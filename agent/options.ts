import type { BlockList } from 'node:net';
import { hostname } from 'node:os';
import type { Advertise } from './mapper.js';

/** Everything `portolan agent` can be told; the CLI maps flags and env vars onto this. */
export interface AgentOptions {
  /**
   * Aggregator base URL, e.g. ws://10.0.0.1:8500 (the agent path is appended), or several,
   * comma-separated: the agent fails over between them (see aggregator-list.ts).
   */
  aggregator: string;
  /** Docker endpoint: unix:///path, tcp://host:port or a socket path; DOCKER_HOST when absent. */
  docker?: string;
  /** Host IP to advertise; detected when absent (see host-ip.ts). */
  ip?: string;
  /** Host IPv6 address to advertise besides `ip` (NodeInfo.address6); detected when absent (see host-ip.ts). */
  ip6?: string;
  node: string;
  /** Which side of a port is registered (mapper.ts placements): host, container, or auto (host when published). */
  advertise: Advertise;
  /** Network whose container IP is used when a container sits on several (SERVICE_NETWORK overrides it). */
  network?: string;
  /** Only register ports that carry SERVICE_NAME / SERVICE_<port>_NAME. */
  explicit: boolean;
  /** Added to every service. */
  tags: string[];
  /** Container label whose value is the IP to register. */
  useIpFromLabel?: string;
  /** Re-list all containers every N seconds; 0 turns it off. */
  resyncSeconds: number;
  /** `stop`: withdraw on stop/kill so clients drain before exit; `die`: only when the process is gone. */
  deregisterOn: 'stop' | 'die';
  /** `on-success`: a container that exited non-zero (not by a signal) stays registered as critical. */
  deregister: 'always' | 'on-success';
  /** Serve Prometheus metrics on this address (host and port) when set. */
  metrics?: { host: string; port: number };
  /** Shared secret sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** PEM CA certificate(s) a wss:// aggregator's certificate must chain to (a private CA); the system CAs otherwise. */
  ca?: string;
  /** PEM client certificate and key, presented to a wss:// aggregator (its --client-ca). */
  clientCertificate?: { cert: string; key: string };
  /** Answer DNS on this host (see local-dns/): these addresses, or `auto` (port 53 on every bridge gateway). */
  localDns?: 'auto' | { host: string; port: number }[];
  /** HOST:PORT for the local DNS's names outside the domain (default: the host's /etc/resolv.conf). */
  recursor?: string;
  /** Local containers sharing a network with a local instance get its container IP and port. */
  splitHorizon: boolean;
  /** Local DNS askers answered (`--dns-allow`); the others get REFUSED. Default: everyone. */
  dnsAllow?: BlockList;
  /** The DNS domain the local DNS answers (the aggregator's `--domain`). */
  domain: string;
  /** Serve Consul's agent API for this host here (local-api/); off when absent. */
  localApi?: { host: string; port: number };
  /** Keep the local API's registrations, check state and maintenance here across restarts. */
  dataDir?: string;
}

export const agentDefaults = {
  node: hostname(),
  advertise: 'auto',
  explicit: false,
  tags: [] as string[],
  resyncSeconds: 0,
  deregisterOn: 'stop',
  deregister: 'always',
  splitHorizon: true,
  domain: 'consul',
} as const satisfies Omit<AgentOptions, 'aggregator'>;
