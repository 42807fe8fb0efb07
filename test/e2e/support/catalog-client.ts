import type { Host } from '../../testbed/index.js';
import { until } from '../../support/until.js';

/** The fields of /v1/catalog/service/:name entries the end-to-end tests read. */
export interface CatalogEntry {
  Node: string;
  ServiceID: string;
  ServiceName: string;
  ServiceAddress: string;
  ServicePort: number;
  ServiceTags: string[];
  ServiceMeta: Record<string, string>;
  ServiceTaggedAddresses?: Record<string, { Address: string; Port: number }>;
}

export interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Address: string; Port: number };
  Checks: Array<{ CheckID: string; Status: string }>;
}

/**
 * The aggregator's HTTP API as read from the root namespace, where the aggregator
 * listens on 0.0.0.0 (cheaper than a request from inside a test host's namespace).
 */
export class CatalogClient {
  constructor(private readonly httpPort: () => number) {}

  async get<T>(path: string): Promise<{ body: T; index: number }> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort()}${path}`);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return { body: (await res.json()) as T, index: Number(res.headers.get('x-consul-index')) };
  }

  async service(name: string): Promise<CatalogEntry[]> {
    return (await this.get<CatalogEntry[]>(`/v1/catalog/service/${name}`)).body;
  }

  /** `/v1/health/service/:name`, only instances whose checks all pass when `passing`. */
  async health(name: string, passing: boolean): Promise<HealthEntry[]> {
    return (await this.get<HealthEntry[]>(`/v1/health/service/${name}${passing ? '?passing' : ''}`)).body;
  }

  /** Every service ID the catalog holds for one node. */
  async nodeServiceIds(node: string): Promise<string[]> {
    const { body } = await this.get<{ Services?: Record<string, unknown> } | null>(`/v1/catalog/node/${node}`);
    return Object.keys(body?.Services ?? {}).sort();
  }

  /** Waits until the service has exactly `count` instances and returns them sorted by ServiceID. */
  async waitForService(name: string, count: number, timeoutMs = 10_000): Promise<CatalogEntry[]> {
    return until(async () => {
      const entries = await this.service(name);
      return entries.length === count ? entries.sort((x, y) => x.ServiceID.localeCompare(y.ServiceID)) : undefined;
    }, timeoutMs, `${count} instance(s) of ${name}`);
  }

  /** Waits until the node's service IDs are exactly `ids`. */
  async waitForNode(node: string, ids: readonly string[], timeoutMs = 10_000): Promise<void> {
    const want = [...ids].sort().join(' ');
    let seen = '';
    await until(async () => {
      seen = (await this.nodeServiceIds(node)).join(' ');
      return seen === want ? true : undefined;
    }, timeoutMs, `node ${node} with services [${want}]`).catch((err: Error) => {
      throw new Error(`${err.message}; has [${seen}]`);
    });
  }
}

/** Removes every container of a host (between cases sharing one testbed). */
export async function removeAllContainers(host: Host): Promise<void> {
  const ids = (await host.docker(['ps', '-aq'])).split('\n').filter(Boolean);
  if (ids.length > 0) await host.docker(['rm', '-f', ...ids]);
}

/** A container's IP on one Docker network. */
export async function containerIp(host: Host, container: string, network: string): Promise<string> {
  return host.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
}
