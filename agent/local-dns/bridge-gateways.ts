import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { ipv6Bytes } from '../../shared/dns/addresses.js';
import { DockerEvents } from '../docker-events.js';

/** The addresses on a host interface, by interface name. */
export type InterfaceAddresses = (ifname: string) => readonly string[];

/** A snapshot of this process's network namespace, which is the agent's host. */
export function localInterfaceAddresses(): InterfaceAddresses {
  const all = networkInterfaces();
  return (ifname) => (all[ifname] ?? []).map((a) => a.address);
}

/**
 * The gateway addresses of one network: none unless it is a local `bridge` network. Docker
 * 20.10 lists IPAM.Config[].Gateway for the default bridge and for pools it chose itself,
 * but leaves it out for a `--subnet` given without `--gateway` (and the address it then
 * picks is not always the subnet's first: with `--ip-range` it is the range's first). The
 * address is on the bridge interface either way, so a missing gateway is the interface's
 * address inside that subnet. With `inhibit_ipv4` Docker puts no IPv4 there itself, so
 * only the interface counts for IPv4.
 */
export function networkGateways(network: Docker.NetworkInspectInfo, addressesOf: InterfaceAddresses): string[] {
  if (network.Driver !== 'bridge' || (network.Scope !== undefined && network.Scope !== 'local')) return [];
  const inhibitV4 = network.Options?.['com.docker.network.bridge.inhibit_ipv4'] === 'true';
  const out: string[] = [];
  for (const config of network.IPAM?.Config ?? []) {
    const listed = config.Gateway;
    const trusted = listed !== undefined && (isIPv6(listed) || (isIPv4(listed) && !inhibitV4));
    const gateway = trusted ? listed : config.Subnet ? addressIn(config.Subnet, addressesOf(bridgeInterface(network))) : undefined;
    if (gateway !== undefined) out.push(gateway);
  }
  return out;
}

/** Gateway IPs of the local bridge networks: unique, IPv4 first, each family in address order. */
export function bridgeGateways(networks: Docker.NetworkInspectInfo[], addressesOf: InterfaceAddresses = localInterfaceAddresses()): string[] {
  const byKey = new Map<string, string>();
  for (const network of networks) {
    for (const gateway of networkGateways(network, addressesOf)) {
      const key = sortKey(gateway);
      if (!byKey.has(key)) byKey.set(key, gateway);
    }
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, gateway]) => gateway);
}

/** Docker names a user-defined bridge `br-<first 12 of the ID>` unless told otherwise. */
function bridgeInterface(network: Docker.NetworkInspectInfo): string {
  return network.Options?.['com.docker.network.bridge.name'] ?? `br-${network.Id.slice(0, 12)}`;
}

function addressIn(subnet: string, addresses: readonly string[]): string | undefined {
  const [base = '', bits = ''] = subnet.split('/');
  const family = isIPv4(base) ? 'ipv4' : isIPv6(base) ? 'ipv6' : undefined;
  const prefix = Number(bits);
  if (family === undefined || bits === '' || !Number.isInteger(prefix)) return undefined;
  const list = new BlockList();
  list.addSubnet(base, prefix, family);
  return addresses.find((a) => (family === 'ipv4' ? isIPv4(a) : isIPv6(a)) && list.check(a, family));
}

/** Sorts IPv4 before IPv6 and by value within a family; equal addresses share a key. */
function sortKey(address: string): string {
  const bytes = isIPv4(address) ? address.split('.').map(Number) : [...ipv6Bytes(address)];
  return `${isIPv4(address) ? 4 : 6}:${bytes.map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export interface BridgeGatewayWatcherOptions {
  docker: Docker;
  logger: Logger;
  /** The full gateway list, each time it differs from the last one delivered. */
  onChange: (gateways: string[]) => void;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Where bridge interfaces are read when IPAM has no gateway; default: this namespace. */
  interfaceAddresses?: () => InterfaceAddresses | Promise<InterfaceAddresses>;
}

const networkActions = ['create', 'destroy'];

/**
 * Follows the bridge gateways of one engine: subscribes to network create/destroy events,
 * then lists, and re-lists on every such event; when the stream ends (engine restart,
 * socket gone) it reconnects with backoff and lists again, as events are lost meanwhile.
 * While the engine is away the last list stands: its bridges outlive the daemon.
 */
export class BridgeGatewayWatcher {
  readonly #o: BridgeGatewayWatcherOptions;
  readonly #log: Logger;
  readonly #events: DockerEvents;
  #last: string[] | undefined;
  #listing: Promise<void> | undefined;
  #again = false;

  constructor(opts: BridgeGatewayWatcherOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'bridge-gateways' });
    this.#events = new DockerEvents({
      docker: opts.docker,
      filters: { type: ['network'], event: networkActions },
      retryMinMs: opts.retryMinMs,
      retryMaxMs: opts.retryMaxMs,
      onEvent: (event) => {
        if (event.Type !== 'network' || !networkActions.includes(event.Action ?? '')) return;
        this.#relist().catch((err) => this.#log.warn({ err: errText(err) }, 'cannot list Docker networks'));
      },
      onSubscribed: () => this.#relist(),
      onFailure: (err, retryMs) => this.#log.debug({ err: errText(err), retryMs }, 'cannot list Docker networks'),
      onEnded: () => this.#log.warn('Docker event stream ended; reconnecting and re-listing networks'),
    });
  }

  /** The last list delivered to onChange; empty before the first. */
  get gateways(): readonly string[] {
    return this.#last ?? [];
  }

  start(): void {
    this.#events.start();
  }

  async stop(): Promise<void> {
    await this.#events.stop();
    await this.#listing?.catch(() => undefined);
  }

  /** One list at a time; a request during a list runs one more after it, which covers it. */
  #relist(): Promise<void> {
    if (this.#listing) {
      this.#again = true;
      return this.#listing;
    }
    const run = async () => {
      try {
        do {
          this.#again = false;
          await this.#listOnce();
        } while (this.#again && !this.#events.stopped);
      } finally {
        this.#listing = undefined;
      }
    };
    this.#listing = run();
    return this.#listing;
  }

  async #listOnce(): Promise<void> {
    const networks = await this.#o.docker.listNetworks();
    const addressesOf = await (this.#o.interfaceAddresses ?? localInterfaceAddresses)();
    if (this.#events.stopped) return;
    const gateways = bridgeGateways(networks, addressesOf);
    if (this.#last !== undefined && gateways.join() === this.#last.join()) return;
    this.#last = gateways;
    this.#o.onChange([...gateways]);
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
