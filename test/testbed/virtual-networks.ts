import { gatewayAddress, gatewayAddress6, linkSubnets, MACVLAN_HOSTS } from './layout.js';
import type { Host } from './testbed.js';

/**
 * Docker networks that span the testbed's hosts: a swarm (for overlay networks) and macvlan
 * networks on a host's eth0, whose containers sit on the test network itself.
 */

/**
 * Makes `manager` a swarm manager advertising its test-network address and joins the others as
 * workers. Each engine's swarm state is in its private data root, so teardown needs no `swarm leave`.
 */
export async function createSwarm(manager: Host, workers: readonly Host[]): Promise<void> {
  await manager.docker(['swarm', 'init', '--advertise-addr', manager.address]);
  const token = await manager.docker(['swarm', 'join-token', '-q', 'worker']);
  await Promise.all(workers.map((worker) => worker.docker(['swarm', 'join', '--token', token, `${manager.address}:2377`])));
}

/**
 * A dual-stack macvlan network on the host's eth0: the link's subnets and gateways, the host's own
 * ranges of them (so macvlan networks on several hosts never hand out one address twice).
 */
export async function createMacvlan(slot: number, host: Host, network: string): Promise<void> {
  const ranges = host.layout.macvlanRanges;
  if (!ranges) throw new Error(`testbed: only the first ${MACVLAN_HOSTS} hosts have macvlan ranges, not ${host.name}`);
  const subnets = linkSubnets(slot);
  await host.docker([
    'network', 'create', '-d', 'macvlan', '-o', 'parent=eth0',
    '--subnet', subnets.v4, '--gateway', gatewayAddress(slot), '--ip-range', ranges.v4,
    '--ipv6', '--subnet', subnets.v6, '--gateway', gatewayAddress6(slot), '--ip-range', ranges.v6,
    network,
  ]);
}
