import { isIPv4 } from 'node:net';
import type { DnsInstance, DnsQuery } from '../../shared/dns/query.js';
import type { Horizon } from '../../shared/dns/views.js';
import type { ContainerNetworks } from './container-networks.js';
import type { LocalCatalog } from './local-catalog.js';

/** Distinct askers remembered at once (a flood from made-up source addresses clears them). */
const MAX_ASKERS = 4096;

/**
 * Split horizon: a container of this host asking for a service gets, for each instance of this
 * host on a Docker network it shares, that instance's container IP and container port (it can
 * reach it directly, and a port nobody published becomes usable by its neighbours); other
 * hosts' instances, and every other asker, get what the catalog says (host IP + published port).
 * A view is the set of networks the asker is on: askers on the same networks share answers (the
 * DNS keeps one responder per view key, views.ts).
 */
export class SplitHorizon implements Horizon {
  readonly #catalog: LocalCatalog;
  readonly #networks: ContainerNetworks;
  readonly #askers = new Map<string, { key: string; query: DnsQuery } | undefined>();
  #askersAt = -1;

  constructor(catalog: LocalCatalog, networks: ContainerNetworks) {
    this.#catalog = catalog;
    this.#networks = networks;
  }

  viewOf(asker: string): { key: string; query: DnsQuery } | undefined {
    // Askers repeat: their view is kept until the containers' networks change.
    if (this.#askersAt !== this.#networks.version || this.#askers.size >= MAX_ASKERS) {
      this.#askers.clear();
      this.#askersAt = this.#networks.version;
    }
    if (this.#askers.has(asker)) return this.#askers.get(asker);
    const view = this.#viewOf(asker);
    this.#askers.set(asker, view);
    return view;
  }

  #viewOf(asker: string): { key: string; query: DnsQuery } | undefined {
    const networks = this.#networks.networksOfAddress(asker);
    if (!networks || networks.size === 0) return undefined;
    return { key: [...networks].sort().join(','), query: this.#view(networks) };
  }

  #view(networks: ReadonlySet<string>): DnsQuery {
    const catalog = this.#catalog;
    return {
      servable: (service) => catalog.servable(service).map((i) => this.#reachable(i, networks)),
      node: (name) => catalog.node(name),
      reverse: (address) => catalog.reverse(address),
      topicIndex: (topic) => catalog.topicIndex(topic),
      pending: (name) => catalog.pending(name),
    };
  }

  /**
   * The instance as an asker on `networks` reaches it best. Its IPv6 twin follows: the
   * container's IPv6 on the networks shared with the asker, at the same container port (the
   * catalog's `address6` is the host side, at the published port: it does not go with the
   * container port), or none.
   */
  #reachable(i: DnsInstance, networks: ReadonlySet<string>): DnsInstance {
    if (i.node.name !== this.#catalog.nodeName) return i;
    const own = this.#catalog.ownService(i.service.id);
    if (!own?.container || !own.containerId) return i;
    const address = this.#networks.addressOn(own.containerId, networks);
    if (address === undefined) return i;
    const address6 = isIPv4(address) ? this.#networks.addressOn(own.containerId, networks, 6) : undefined;
    const { address6: _hostSide, ...service } = i.service;
    return { ...i, service: { ...service, address, ...(address6 === undefined ? {} : { address6 }), port: own.container.port } };
  }
}
