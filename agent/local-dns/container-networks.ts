import { isIPv4, isIPv6 } from 'node:net';
import type Docker from 'dockerode';
import { expandIPv6 } from '../../shared/dns/addresses.js';

/** A container's place on one Docker network. */
interface Endpoint {
  networkId: string;
  name: string;
  v4?: string;
  v6?: string;
  /** The IPv4 subnet (from the address and its prefix length) and its gateway, the host's side. */
  subnet?: { base: number; bits: number; gateway: string };
}

interface Entry {
  /** In the order addressOn picks from: network name, then ID. */
  endpoints: Endpoint[];
  /** `--network container:<id>`: the container whose network stack this one uses. */
  sharesWith?: string;
}

/** How far a chain of `container:` sharing (c uses b's, b uses a's) is followed. */
const MAX_SHARING_STEPS = 4;

/**
 * The network endpoints of this host's running containers, fed from inspects, for split
 * horizon: which networks an asker's address is on, and where a container can be reached on
 * networks it shares with the asker. Host-network containers have no address of their own and
 * count as the host (no entry); paused containers count as running (Docker says Running).
 */
export class ContainerNetworks {
  readonly #containers = new Map<string, Entry>();
  /** Address key → the running containers holding it → their network IDs. */
  readonly #byAddress = new Map<string, Map<string, ReadonlySet<string>>>();
  /** Askers no container holds, by address: what their subnet says (until the next change). */
  readonly #bySubnet = new Map<string, ReadonlySet<string> | undefined>();
  #version = 0;

  /** Bumped on every change that alters an answer, so callers can cache by it. */
  get version(): number {
    return this.#version;
  }

  /** The container's latest inspect; null, or not running, means it is gone. */
  update(id: string, inspect: Docker.ContainerInspectInfo | null): void {
    const next = inspect ? entryOf(inspect) : undefined;
    const previous = this.#containers.get(id);
    if (JSON.stringify(previous) === JSON.stringify(next)) return;
    if (previous) this.#unindex(id, previous);
    if (next) {
      this.#containers.set(id, next);
      this.#index(id, next);
    } else {
      this.#containers.delete(id);
    }
    this.#bySubnet.clear();
    this.#version++;
  }

  /**
   * The Docker network IDs of the running container that has this IPv4 or IPv6 address
   * (`::ffff:a.b.c.d` counts as a.b.c.d) on any network; undefined when no container, or more
   * than one (overlapping macvlan subnets, say), has it: such an asker is answered as any other.
   */
  networksOfAddress(ip: string): ReadonlySet<string> | undefined {
    const key = addressKey(ip);
    const holders = this.#byAddress.get(key);
    if (holders) return holders.size === 1 ? holders.values().next().value : undefined;
    if (!this.#bySubnet.has(key)) this.#bySubnet.set(key, this.#subnetOf(key));
    return this.#bySubnet.get(key);
  }

  /**
   * An IPv4 asker no container is known to hold, inside the subnet of one network a known
   * container is on (not its gateway, the host): a container started a moment ago, asking before
   * its inspect arrived. It is on that network, whatever else it is on.
   */
  #subnetOf(key: string): ReadonlySet<string> | undefined {
    if (!isIPv4(key)) return undefined;
    const ip = ipv4Number(key);
    const found = new Set<string>();
    for (const entry of this.#containers.values()) {
      for (const e of entry.endpoints) {
        const s = e.subnet;
        if (s && s.gateway !== key && ip >>> (32 - s.bits) === s.base >>> (32 - s.bits)) found.add(e.networkId);
      }
    }
    return found.size === 1 ? found : undefined;
  }

  /**
   * The container's address on the first of `networks` it is on, in network name order (then
   * ID): IPv4 before IPv6 on one network, or only the family asked for, the next shared
   * network serving when the first has none of it. A container on another's network stack
   * (`container:`) is reached at that container's addresses.
   */
  addressOn(containerId: string, networks: ReadonlySet<string>, family?: 4 | 6): string | undefined {
    for (const e of this.#endpointsOf(containerId)) {
      if (!networks.has(e.networkId)) continue;
      const address = family === 4 ? e.v4 : family === 6 ? e.v6 : (e.v4 ?? e.v6);
      if (address !== undefined) return address;
    }
    return undefined;
  }

  #endpointsOf(containerId: string): Endpoint[] {
    let entry = this.#containers.get(containerId);
    for (let step = 0; entry?.sharesWith !== undefined && step < MAX_SHARING_STEPS; step++) {
      entry = this.#containers.get(entry.sharesWith);
    }
    return entry?.endpoints ?? [];
  }

  #index(id: string, entry: Entry): void {
    const networks = new Set(entry.endpoints.map((e) => e.networkId));
    for (const key of addressKeys(entry)) {
      let holders = this.#byAddress.get(key);
      if (!holders) this.#byAddress.set(key, (holders = new Map()));
      holders.set(id, networks);
    }
  }

  #unindex(id: string, entry: Entry): void {
    for (const key of addressKeys(entry)) {
      const holders = this.#byAddress.get(key);
      holders?.delete(id);
      if (holders?.size === 0) this.#byAddress.delete(key);
    }
  }
}

function entryOf(inspect: Docker.ContainerInspectInfo): Entry | undefined {
  if (!inspect.State?.Running) return undefined;
  const mode = inspect.HostConfig?.NetworkMode ?? '';
  if (mode === 'host') return undefined;
  if (mode.startsWith('container:')) return { endpoints: [], sharesWith: mode.slice('container:'.length) };
  const endpoints = endpointsOf(inspect.NetworkSettings?.Networks ?? {});
  return endpoints.length > 0 ? { endpoints } : undefined;
}

function endpointsOf(networks: Docker.ContainerInspectInfo['NetworkSettings']['Networks']): Endpoint[] {
  const out: Endpoint[] = [];
  for (const [name, n] of Object.entries(networks)) {
    const v4 = isIPv4(n.IPAddress ?? '') ? n.IPAddress : undefined;
    const v6 = isIPv6(n.GlobalIPv6Address ?? '') ? n.GlobalIPv6Address : undefined;
    if (!n.NetworkID || (v4 === undefined && v6 === undefined)) continue;
    const bits = n.IPPrefixLen ?? 0;
    const subnet = v4 !== undefined && bits >= 8 && bits <= 30 ? { subnet: { base: ipv4Number(v4), bits, gateway: n.Gateway ?? '' } } : {};
    out.push({ networkId: n.NetworkID, name, ...(v4 === undefined ? {} : { v4 }), ...(v6 === undefined ? {} : { v6 }), ...subnet });
  }
  return out.sort((a, b) => compare(a.name, b.name) || compare(a.networkId, b.networkId));
}

function addressKeys(entry: Entry): string[] {
  return entry.endpoints.flatMap((e) => [e.v4, e.v6].filter((a): a is string => a !== undefined).map(addressKey));
}

/** One spelling per address, whatever form the socket or Docker wrote it in. */
function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  return isIPv6(ip) ? expandIPv6(ip) : ip;
}

function ipv4Number(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
