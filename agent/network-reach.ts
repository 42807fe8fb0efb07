import type { NetworkInspectInfo } from 'dockerode';

/**
 * What the mapper needs to know about one Docker network: whether a container's own address
 * on it can be reached from other hosts, per address family.
 */
export interface NetworkFacts {
  name: string;
  driver: string;
  scope: string;
  reachable4: boolean;
  reachable6: boolean;
}

/** Docker's bridge option naming a gateway mode (`nat`, `nat-unprotected`, `routed`, `isolated`). */
const GATEWAY_MODE = { 4: 'com.docker.network.bridge.gateway_mode_ipv4', 6: 'com.docker.network.bridge.gateway_mode_ipv6' } as const;

/**
 * The rule (README "How containers become services"): a swarm-scoped overlay, macvlan and
 * ipvlan put the container's address where other hosts reach it (the swarm's `ingress` aside); a bridge does only in
 * `routed` gateway mode (the hosts' routers must then route its subnet to this host); every
 * other network (the default bridge, local bridges, host, none, a local-scope overlay that
 * no swarm spans) does not.
 */
export function networkFacts(n: Pick<NetworkInspectInfo, 'Name' | 'Driver' | 'Scope' | 'Options'> & { Ingress?: boolean }): NetworkFacts {
  const driver = n.Driver ?? '';
  const scope = n.Scope ?? '';
  // The swarm routing mesh's `ingress` overlay carries published service ports, not the tasks' own traffic.
  const spans = (driver === 'overlay' && scope === 'swarm' && n.Ingress !== true) || driver === 'macvlan' || driver === 'ipvlan';
  const routed = (family: 4 | 6): boolean => driver === 'bridge' && n.Options?.[GATEWAY_MODE[family]] === 'routed';
  return { name: n.Name, driver, scope, reachable4: spans || routed(4), reachable6: spans || routed(6) };
}

/** Facts by network ID (what a container's NetworkSettings.Networks entries refer to). */
export function networkFactsById(list: readonly NetworkInspectInfo[]): Map<string, NetworkFacts> {
  return new Map(list.map((n) => [n.Id, networkFacts(n)]));
}
