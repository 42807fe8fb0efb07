import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import * as z from 'zod/mini';
import { NodeRecord } from '../catalog/records.js';
import type { NodeRecords } from '../catalog/replica.js';
import type { ExternalChange, ExternalNode } from '../catalog/store.js';
import { CheckStatus, ServiceInstance, type ServiceCheck } from '../../shared/model.js';
import {
  address,
  consulObject,
  decodeFailure,
  meta,
  port,
  serviceId,
  serviceName,
  tags,
  taggedAddresses,
  weights,
  wireTaggedAddresses,
  wireWeights,
} from '../../shared/consul-input.js';
import { errors } from './errors.js';

/**
 * Consul's catalog write API (/v1/catalog/register, /deregister) for external nodes: what no
 * agent runs next to (a managed database, a SaaS endpoint). The bodies are Consul's
 * structs.RegisterRequest and structs.DeregisterRequest; a request is validated whole and
 * turned into the node's next state in the node's turn of the store (ExternalChange), so a
 * refusal writes nothing.
 */

/** A DNS label, as `<node>.node.<domain>` needs one. */
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

const nodeName = z.string('Invalid node name: must be a string').check(
  z.refine((s) => s === '' || DNS_LABEL.test(s), 'Invalid node name: must be a DNS label (letters, digits and inner hyphens, at most 63)'),
);

const text = (what: string, max: number) => z.string(`Invalid ${what}: must be a string`).check(z.maxLength(max, `Invalid ${what}: longer than ${max} characters`));

/** structs.HealthCheck, the fields the catalog keeps (Definition, Type, … are ignored). */
const healthCheck = consulObject({
  Node: z.optional(z.string('Invalid check node: must be a string')),
  // eslint-disable-next-line no-control-regex
  CheckID: z.optional(text('CheckID', 256).check(z.refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'Invalid CheckID: must not contain control characters'))),
  Name: z.optional(text('check name', 256)),
  Status: z.optional(z.enum(CheckStatus.options, 'Invalid check status: must be passing, warning or critical')),
  Notes: z.optional(text('check notes', 4096)),
  Output: z.optional(text('check output', 4096)),
  ServiceID: z.optional(serviceId),
});

const registerRequest = consulObject({
  Node: z.optional(nodeName),
  Address: z.optional(address),
  Datacenter: z.optional(z.string('Invalid datacenter: must be a string')),
  // Accepted as Consul takes them; a node's lan/wan are derived from its Address, and a
  // `lan_ipv6` beside an IPv4 Address is its IPv6 (AAAA, PTR), as Consul's DNS reads it.
  TaggedAddresses: z.optional(z.record(z.string(), z.string('Invalid node tagged address: must be a string'))),
  NodeMeta: z.optional(meta),
  Service: z.optional(
    consulObject({
      ID: z.optional(serviceId),
      Service: z.optional(serviceName),
      Tags: z.optional(tags),
      Address: z.optional(address),
      TaggedAddresses: z.optional(taggedAddresses),
      Meta: z.optional(meta),
      Port: z.optional(port),
      Weights: z.optional(weights),
    }),
  ),
  Check: z.optional(healthCheck),
  Checks: z.optional(z.array(healthCheck).check(z.maxLength(32, 'Invalid checks: more than 32'))),
  SkipNodeUpdate: z.optional(z.boolean('Invalid SkipNodeUpdate: must be a boolean')),
});

const deregisterRequest = consulObject({
  Node: z.optional(z.string('Invalid node name: must be a string')),
  Datacenter: z.optional(z.string('Invalid datacenter: must be a string')),
  ServiceID: z.optional(z.string('Invalid service ID: must be a string')),
  CheckID: z.optional(z.string('Invalid CheckID: must be a string')),
});

type HealthCheckInput = z.infer<typeof healthCheck>;

/** A register request, validated whole. */
export interface Registration {
  node: string;
  address: string;
  /** TaggedAddresses.lan_ipv6, beside an IPv4 address. */
  address6: string | undefined;
  datacenter: string | undefined;
  meta: Record<string, string>;
  skipNodeUpdate: boolean;
  /** The service as the wire model holds it; '' for an address means the node's. */
  service: Omit<ServiceInstance, 'checks'> | undefined;
  checks: { serviceId: string; check: ServiceCheck }[];
}

export interface Deregistration {
  node: string;
  datacenter: string | undefined;
  serviceId: string | undefined;
  checkId: string | undefined;
}

const { badRequest, agentNode } = errors;

function decoded<S extends z.ZodMiniType>(schema: S, body: unknown): z.infer<S> {
  const r = z.safeParse(schema, body);
  if (!r.success) throw badRequest(decodeFailure(r.error));
  return r.data;
}

/** structs.RegisterRequest → a Registration, or Consul's kind of 400 (agent/consul/catalog_endpoint.go texts where it has them). */
export function parseRegistration(body: unknown): Registration {
  const r = decoded(registerRequest, body);
  if (!r.Node || !r.Address) throw badRequest('Must provide node and address');
  const s = r.Service;
  if (s && !s.Service) throw badRequest(s.ID ? 'Must provide service name with ID' : 'Request decode failed: Service.Service: Missing service name');
  const serviceAddress = s?.Address || r.Address;
  const serviceAddress6 = ipv6Twin(serviceAddress, s?.TaggedAddresses?.lan_ipv6?.Address);
  const service = s && {
    id: s.ID || s.Service!,
    name: s.Service!,
    tags: s.Tags ?? [],
    meta: s.Meta ?? {},
    address: serviceAddress,
    ...(serviceAddress6 && { address6: serviceAddress6 }),
    port: s.Port ?? 0,
    protocol: 'tcp' as const,
    containerId: '',
    containerName: '',
    image: '',
    ...(s.Weights && { weights: wireWeights(s.Weights) }),
    ...(wireTaggedAddresses(s.TaggedAddresses) && { taggedAddresses: wireTaggedAddresses(s.TaggedAddresses) }),
  };
  const checks = [...(r.Check ? [r.Check] : []), ...(r.Checks ?? [])].map((c) => registeredCheck(c, r.Node!));
  const address6 = ipv6Twin(r.Address, r.TaggedAddresses?.lan_ipv6);
  return { node: r.Node, address: r.Address, address6, datacenter: r.Datacenter, meta: r.NodeMeta ?? {}, skipNodeUpdate: r.SkipNodeUpdate === true, service, checks };
}

/**
 * A tagged `lan_ipv6` as the IPv6 beside an IPv4 address: what Consul's DNS answers AAAA with
 * (TranslateAddress) and what a node or service here keeps as `address6`.
 */
function ipv6Twin(address: string, lanIpv6: string | undefined): string | undefined {
  return lanIpv6 !== undefined && isIPv4(address) && isIPv6(lanIpv6) ? lanIpv6 : undefined;
}

function registeredCheck(c: HealthCheckInput, node: string): { serviceId: string; check: ServiceCheck } {
  if (c.Node && c.Node !== node) throw badRequest(`Check node "${c.Node}" does not match node "${node}"`);
  // Consul: a check without CheckID takes its Name.
  const checkId = c.CheckID || c.Name;
  if (!checkId) throw badRequest('Missing check ID');
  const check: ServiceCheck = { id: localCheckId(checkId), checkId, name: c.Name ?? '', type: '', status: c.Status ?? 'critical', output: c.Output ?? '' };
  if (c.Notes) check.notes = c.Notes;
  return { serviceId: c.ServiceID ?? '', check };
}

/** The wire's per-service check ID (at most 64 characters) for a CheckID of up to 256. */
function localCheckId(checkId: string): string {
  return checkId.length <= 64 ? checkId : createHash('sha256').update(checkId).digest('hex').slice(0, 64);
}

export function parseDeregistration(body: unknown): Deregistration {
  const r = decoded(deregisterRequest, body);
  if (!r.Node) throw badRequest('Must provide node');
  return { node: r.Node, datacenter: r.Datacenter, serviceId: r.ServiceID || undefined, checkId: r.CheckID || undefined };
}

/** An agent's node (its record, or its health while the record is being written) is refused. */
function externalOrNone(name: string, current: NodeRecords | undefined): NodeRecords | undefined {
  if (current?.health || (current?.node && !current.node.external)) throw agentNode(name);
  return current?.node ? current : undefined;
}

/**
 * Consul's EnsureRegistration: the node upserted (kept as it is with SkipNodeUpdate), the
 * service upserted with the checks it had, each check upserted by CheckID on the node or on
 * its service; the node's other services stay.
 */
export function registerChange(reg: Registration): ExternalChange {
  return (stored) => {
    const current = externalOrNone(reg.node, stored);
    const kept = reg.skipNodeUpdate ? current?.node : undefined;
    const node: NodeRecord = kept ?? {
      name: reg.node,
      address: reg.address,
      ...(reg.address6 && { address6: reg.address6 }),
      meta: reg.meta,
      agentVersion: '',
      engineId: '',
      external: true,
      ...(current?.node?.checks && { checks: current.node.checks }),
    };
    const services = new Map([...(current?.services ?? [])].map(([id, s]) => [id, s.record.service] as const));
    if (reg.service) services.set(reg.service.id, { ...reg.service, checks: services.get(reg.service.id)?.checks ?? [] });
    let nodeChecks = node.checks ?? [];
    for (const { serviceId: id, check } of reg.checks) {
      if (id === '') {
        nodeChecks = upsertCheck(nodeChecks, check);
        continue;
      }
      const s = services.get(id);
      if (!s) throw badRequest('Missing service registration');
      services.set(id, { ...s, checks: upsertCheck(s.checks, check) });
    }
    const next = { node: { ...node, ...(nodeChecks.length > 0 && { checks: nodeChecks }) }, services: [...services.values()] };
    return valid(next);
  };
}

/** Consul's Deregister: the service (with its checks), else the check, else the whole node. Nothing to remove: nothing written. */
export function deregisterChange(dereg: Deregistration): ExternalChange {
  return (stored) => {
    const current = externalOrNone(dereg.node, stored);
    if (!current?.node) return undefined;
    const services = [...current.services.values()].map((s) => s.record.service);
    if (dereg.serviceId !== undefined) {
      if (!current.services.has(dereg.serviceId)) return undefined;
      return { node: current.node, services: services.filter((s) => s.id !== dereg.serviceId) };
    }
    const checkId = dereg.checkId;
    if (checkId === undefined) return null;
    const without = (checks: readonly ServiceCheck[]) => checks.filter((c) => c.checkId !== checkId);
    const nodeChecks = without(current.node.checks ?? []);
    const next = { node: { ...current.node, checks: nodeChecks }, services: services.map((s) => ({ ...s, checks: without(s.checks) })) };
    const removed = nodeChecks.length !== (current.node.checks ?? []).length || next.services.some((s, i) => s.checks.length !== services[i]!.checks.length);
    return removed ? next : undefined;
  };
}

function upsertCheck(checks: readonly ServiceCheck[], check: ServiceCheck): ServiceCheck[] {
  const at = checks.findIndex((c) => c.checkId === check.checkId);
  return at < 0 ? [...checks, check] : checks.map((c, i) => (i === at ? check : c));
}

/** The wire model's bounds (16 checks a service or node…), checked before anything is written. */
function valid(next: ExternalNode): ExternalNode {
  const node = z.safeParse(NodeRecord, next.node);
  if (!node.success) throw badRequest(decodeFailure(node.error).replace('Request decode failed', 'Invalid node'));
  for (const s of next.services) {
    const r = z.safeParse(ServiceInstance, s);
    if (!r.success) throw badRequest(decodeFailure(r.error).replace('Request decode failed', `Invalid service ${s.id}`));
  }
  return next;
}
