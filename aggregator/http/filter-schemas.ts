import type { Schema } from './filter.js';

/**
 * The selectors `filter` accepts per endpoint, after the tables in Consul's api-docs
 * (catalog.mdx, health.mdx "Filtering"), limited to the fields portolan fills.
 */

const serviceAddress: Schema = { Address: 'string', Port: 'number' };
const weights: Schema = { Passing: 'number', Warning: 'number' };

/** structs.Node: /v1/catalog/nodes and the Node of health entries. */
export const nodeSchema: Schema = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  TaggedAddresses: 'map',
  Meta: 'map',
};

/** structs.NodeService: health entries' Service and /v1/catalog/node/:node Services. */
export const nodeServiceSchema: Schema = {
  Kind: 'string',
  ID: 'string',
  Service: 'string',
  Tags: 'strings',
  Address: 'string',
  TaggedAddresses: { mapOf: serviceAddress },
  Meta: 'map',
  Port: 'number',
  Weights: { object: weights },
  EnableTagOverride: 'bool',
  PeerName: 'string',
};

/** structs.HealthCheck: /v1/health/checks, /node, /state and health entries' Checks. */
export const checkSchema: Schema = {
  Node: 'string',
  CheckID: 'string',
  Name: 'string',
  Status: 'string',
  Notes: 'string',
  Output: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: 'strings',
  Type: 'string',
  ExposedPort: 'number',
};

/** structs.ServiceNode: /v1/catalog/service/:name and /v1/catalog/services. */
export const serviceNodeSchema: Schema = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  TaggedAddresses: 'map',
  NodeMeta: 'map',
  ServiceKind: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: 'strings',
  ServiceAddress: 'string',
  ServiceTaggedAddresses: { mapOf: serviceAddress },
  ServiceWeights: { object: weights },
  ServiceMeta: 'map',
  ServicePort: 'number',
  ServiceEnableTagOverride: 'bool',
};

/** structs.CheckServiceNode: /v1/health/service/:name. */
export const healthEntrySchema: Schema = {
  Node: { object: nodeSchema },
  Service: { object: nodeServiceSchema },
  Checks: { list: checkSchema },
};
