import type { AggregatorOptions } from '../../aggregator/server.js';

/** startAggregator's options for a test: loopback, ports the kernel picks, the CLI's defaults otherwise. */
export const loopbackAggregator: AggregatorOptions = {
  http: { host: '127.0.0.1', port: 0 },
  dns: { host: '127.0.0.1', port: 0 },
  domain: 'consul',
  altDomains: [],
  datacenter: 'dc1',
  nodeName: 'agg',
  serviceTtl: 0,
  nodeTtl: 0,
  udpMaxSize: 1232,
  maxPayload: 1 << 20,
  heartbeatMs: 1000,
  suspectAfterMs: 3000,
  reapAfterMs: 60_000,
};
