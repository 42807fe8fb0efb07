import { createHash } from 'node:crypto';

/**
 * Consul JSON shapes that the aggregator's API and the agent's local API both answer with, built
 * field by field in the order Consul's Go structs serialise them.
 */

/** A fixed namespace so that a node name always maps to the same RFC 4122 v5 UUID, on every aggregator and agent. */
const NODE_ID_NAMESPACE = Buffer.from('5f0c6e0a8d2b4c1e9a7b3d4e6f809a1b', 'hex');

export function nodeId(name: string): string {
  const hash = createHash('sha1').update(NODE_ID_NAMESPACE).update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface SelfFields {
  datacenter: string;
  nodeName: string;
  version: string;
  /** True for the aggregator (its own single "server"), false for an agent. */
  server: boolean;
  /** The address and port the client reached. */
  addr: string;
  port: number;
}

/** /v1/agent/self: Prometheus and Fabio read Config.Datacenter, applications Config.NodeName. */
export function agentSelfJson(f: SelfFields) {
  const id = nodeId(f.nodeName);
  return {
    Config: {
      Datacenter: f.datacenter,
      PrimaryDatacenter: f.datacenter,
      NodeName: f.nodeName,
      NodeID: id,
      Revision: '',
      Server: f.server,
      Version: f.version,
      BuildDate: '',
    },
    DebugConfig: {},
    Coord: null,
    Member: {
      Name: f.nodeName,
      Addr: f.addr,
      Port: f.port,
      Tags: { dc: f.datacenter, id, role: f.server ? 'portolan' : 'node', vsn: f.version },
      Status: 1,
      ProtocolMin: 1,
      ProtocolMax: 5,
      ProtocolCur: 2,
      DelegateMin: 2,
      DelegateMax: 5,
      DelegateCur: 4,
    },
    Stats: {},
    Meta: {},
  };
}

/** A check as Consul's structs.HealthCheck carries it (the aggregator's CheckView has these fields). */
export interface HealthCheckFields {
  checkId: string;
  name: string;
  status: string;
  notes: string;
  output: string;
  serviceId: string;
  serviceName: string;
  serviceTags: readonly string[];
  type: string;
  interval: string;
  timeout: string;
  createIndex: number;
  modifyIndex: number;
}

/** structs.HealthCheck: the aggregator's health endpoints and the agent's /v1/agent/checks. */
export function healthCheckJson(check: HealthCheckFields, nodeName: string) {
  return {
    Node: nodeName,
    CheckID: check.checkId,
    Name: check.name,
    Status: check.status,
    Notes: check.notes,
    Output: check.output,
    ServiceID: check.serviceId,
    ServiceName: check.serviceName,
    ServiceTags: [...check.serviceTags],
    Type: check.type,
    Interval: check.interval,
    Timeout: check.timeout,
    ExposedPort: 0,
    Definition: {},
    CreateIndex: check.createIndex,
    ModifyIndex: check.modifyIndex,
  };
}
