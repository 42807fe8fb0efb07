import { afterEach } from 'node:test';
import { useTestbed, type Host } from '../../testbed/index.js';
import { CatalogClient, removeAllContainers } from './catalog-client.js';
import { useCluster } from './cluster.js';

/** busybox httpd in the foreground serving the test page. */
export const httpd = (port = 80): string[] => ['httpd', '-f', '-p', String(port), '-h', '/www'];

/**
 * One two-host testbed with an aggregator and an agent per host, shared by every case of a
 * suite: after each case all containers are removed and both nodes' services are gone.
 */
export function useAgentSuite() {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);
  const catalog = new CatalogClient(() => cluster().httpPort);

  afterEach(async () => {
    for (const h of bed().hosts) await removeAllContainers(h);
    for (const h of bed().hosts) await catalog.waitForNode(h.name, []);
  });

  return {
    bed,
    cluster,
    catalog,
    host: (name: string): Host => bed().host(name),
    run: (h: Host, args: string[]): Promise<string> => h.docker(['run', '-d', ...args]),
    /** Stops a host's agent (its node leaves the catalog) and starts it again with other flags. */
    async restartAgent(name: string, args: string[]): Promise<void> {
      await cluster().agent(name).stop();
      await cluster().startAgent(bed().host(name), args);
    },
    /** Waits until a node's service IDs are exactly `ids`; the failure shows the agent's log tail. */
    async waitForNode(name: string, ids: readonly string[], timeoutMs?: number): Promise<void> {
      await catalog.waitForNode(name, ids, timeoutMs).catch((err: Error) => {
        const tail = cluster().agent(name).logs.slice(-12).map((l) => JSON.stringify(l));
        throw new Error(`${err.message}\nagent log:\n${tail.join('\n')}`);
      });
    },
  };
}
