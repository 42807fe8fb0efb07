import Fastify, { type FastifyInstance } from 'fastify';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { registerConsulApi, type ConsulApi } from '../../aggregator/http/consul-api.js';
import type { ServiceInstance } from '../../shared/model.js';
import { instance } from '../support/services.js';

export interface TestApi {
  store: MemoryStore;
  app: FastifyInstance;
  api: ConsulApi;
  /** http://127.0.0.1:<port>, once listen() ran. */
  base: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** A real MemoryStore behind the real Consul API on a fresh fastify instance. */
export async function startApi(
  opts: { eventsHeartbeatMs?: number; maxEventStreams?: number; startIndex?: number; settleQuietMs?: number } = {},
): Promise<TestApi> {
  // Settled at once unless a test is about settling: most tests start from an empty catalog.
  const store = new MemoryStore({ startIndex: opts.startIndex ?? 100, now: () => 0, settleQuietMs: opts.settleQuietMs ?? 0 });
  const app = Fastify();
  const api = registerConsulApi(app, {
    query: store.query,
    datacenter: 'dc1',
    nodeName: 'portolan-aggregator',
    version: '0.1.0',
    eventsHeartbeatMs: opts.eventsHeartbeatMs,
    maxEventStreams: opts.maxEventStreams,
  });
  await app.ready();
  const t: TestApi = {
    store,
    app,
    api,
    base: '',
    async listen() {
      t.base = await app.listen({ host: '127.0.0.1', port: 0 });
      return t.base;
    },
    close: () => app.close(),
  };
  return t;
}

/** startApi, closed after the test, listening on loopback. */
export async function listening(t: { after(fn: () => unknown): void }, opts: Parameters<typeof startApi>[0] = {}): Promise<TestApi> {
  const api = await startApi(opts);
  t.after(() => api.close());
  await api.listen();
  return api;
}

/** The docs' example service ("web" on node "t2.320"), published 198.18.0.1:512 → 172.17.0.3:5000. */
export function docsWeb(over: Partial<ServiceInstance> = {}): ServiceInstance {
  return instance({
    id: '32a2a47f7992:nodea:5000',
    name: 'web',
    tags: ['prod'],
    meta: { web_meta_value: 'baz' },
    address: '172.17.0.3',
    port: 5000,
    container: { address: '172.17.0.3', port: 5000 },
    host: { address: '198.18.0.1', port: 512 },
    ...over,
  });
}

export const docsNode = {
  name: 't2.320',
  address: '192.168.10.10',
  meta: { somekey: 'somevalue' },
  agentVersion: 'test',
  engineId: '',
};

/** Resolves with the status once the response head arrives, or 'pending' after `ms`. */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}
