import { isIP } from 'node:net';
import * as z from 'zod/mini';
// model.js also sets zod's English messages, which these build on.
import './model.js';
import type { Endpoint, Weights } from './model.js';

/**
 * The fields of Consul's write bodies that the agent's local API (`/v1/agent/service/register`)
 * and the aggregator's catalog API (`/v1/catalog/register`) share, validated as strictly as the
 * wire model needs them (shared/model.ts): what passes here never fails the wire schema later,
 * so nothing is registered half. Messages follow Consul's (agent/agent_endpoint.go,
 * agent/structs), prefixed by the field's path.
 */

/**
 * Consul's bodies are read by Go's encoding/json, which matches field names case-insensitively
 * (`"name"`, `"Name"`), and Consul also takes snake_case spellings (`deregister_critical_service_after`,
 * lib.TranslateKeys). Field names are matched ignoring case and underscores; the keys of maps
 * (Meta, TaggedAddresses) are data and kept as sent. A null value reads as absent, as Go leaves
 * the field's zero value.
 */
export function consulObject<S extends Record<string, z.core.SomeType>>(shape: S) {
  const byLoose = new Map(Object.keys(shape).map((k) => [loose(k), k]));
  return z.pipe(
    z.transform((value: unknown) => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        const canonical = byLoose.get(loose(key));
        // Go's decoder keeps the last of two spellings of one field; so does this.
        if (canonical !== undefined && v !== null) out[canonical] = v;
      }
      return out;
    }),
    z.object(shape),
  );
}

function loose(key: string): string {
  return key.replaceAll('_', '').toLowerCase();
}

/** A DNS label: Consul serves names that are not only in its HTTP API; portolan refuses them. */
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export const serviceName = z.string({ error: (issue) => (issue.input === undefined ? 'Missing service name' : 'Invalid service name: must be a string') }).check(
  z.refine((s) => s !== '', 'Missing service name'),
  z.refine((s) => s === '' || DNS_LABEL.test(s), 'Invalid service name: must be a DNS label (letters, digits and inner hyphens, at most 63)'),
);

/** Service IDs travel in URL paths (`/v1/agent/service/deregister/:id`): no slash, no control characters. */
export const serviceId = z.string().check(
  z.maxLength(512, 'Invalid service ID: longer than 512 characters'),
  // eslint-disable-next-line no-control-regex
  z.refine((s) => !/[/\u0000-\u001f\u007f]/.test(s), 'Invalid service ID: must not contain "/" or control characters'),
);

export const port = z.int('Invalid port: must be an integer').check(
  z.minimum(0, 'Invalid port: must be 0 to 65535'),
  z.maximum(65535, 'Invalid port: must be 0 to 65535'),
);

/** RFC 1123 host name: labels of letters, digits and inner hyphens, at most 253 characters. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IP or a host name; '' means "the node's address", as in Consul. The unspecified addresses are Consul's "Invalid service address". */
export const address = z.string().check(
  z.refine((s) => s !== '0.0.0.0' && s !== '::' && s !== '[::]', 'Invalid service address'),
  z.refine((s) => s === '' || isIP(s) !== 0 || HOSTNAME.test(s), 'Invalid address: must be an IP address or a host name'),
);

export const tags = z.array(z.string().check(z.maxLength(255, 'Invalid tag: longer than 255 characters'))).check(z.maxLength(64, 'Invalid tags: more than 64'));

/** Consul's metadata rules (structs.ValidateMetadata) with its limits: 64 pairs, keys of 128, values of 512. */
const META_KEY = /^[A-Za-z0-9_-]+$/;
export const meta = z.record(z.string(), z.string()).check(
  z.refine((m) => Object.keys(m).length <= 64, 'Invalid meta: more than 64 key/value pairs'),
  z.refine((m) => Object.keys(m).every((k) => k !== ''), 'Invalid meta: key cannot be blank'),
  z.refine((m) => Object.keys(m).every((k) => k === '' || META_KEY.test(k)), 'Invalid meta: key names can only contain alphanumeric, -, and _ characters'),
  z.refine((m) => Object.keys(m).every((k) => k.length <= 128), 'Invalid meta: key is too long (limit: 128 characters)'),
  z.refine((m) => Object.keys(m).every((k) => !k.startsWith('consul-')), "Invalid meta: key prefix 'consul-' is reserved for internal use"),
  z.refine((m) => Object.values(m).every((v) => v.length <= 512), 'Invalid meta: value is too long (limit: 512 characters)'),
);

const taggedAddress = consulObject({ Address: address, Port: z.optional(port) });

export const taggedAddresses = z.record(
  z.string().check(z.minLength(1, 'Invalid tagged address: blank tag'), z.maxLength(64, 'Invalid tagged address: tag longer than 64 characters')),
  taggedAddress,
).check(z.refine((r) => Object.keys(r).length <= 16, 'Invalid tagged addresses: more than 16'));

/** Consul's structs.ValidateWeights. */
export const weights = consulObject({
  Passing: z.int('Invalid Weights: Passing must be an integer').check(z.minimum(1, 'Invalid Weights: Passing must be greater than 0'), z.maximum(65535, 'Invalid Weights: Passing must be at most 65535')),
  Warning: z.optional(z.int('Invalid Weights: Warning must be an integer').check(z.minimum(0, 'Invalid Weights: Warning must be greater or equal than 0'), z.maximum(65535, 'Invalid Weights: Warning must be at most 65535'))),
});

/** The wire's tagged addresses (a registered address '' stays as Consul shows it: the node's). */
export function wireTaggedAddresses(input: z.infer<typeof taggedAddresses> | undefined): Record<string, Endpoint> | undefined {
  if (!input || Object.keys(input).length === 0) return undefined;
  return Object.fromEntries(Object.entries(input).filter(([, a]) => a.Address !== '').map(([tag, a]) => [tag, { address: a.Address, port: a.Port ?? 0 }]));
}

export function wireWeights(input: z.infer<typeof weights> | undefined): Weights | undefined {
  return input && { passing: input.Passing, warning: input.Warning ?? 1 };
}

/** The first problem of a body, as Consul words a decode failure: `Request decode failed: Service.Port: Invalid port: …`. */
export function decodeFailure(error: z.core.$ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'Request decode failed';
  const path = issue.path.map(String).join('.');
  return path === '' ? `Request decode failed: ${issue.message}` : `Request decode failed: ${path}: ${issue.message}`;
}

/** A body read as JSON, or Consul's text for one that is not. */
export function parseJsonBody(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, message: `Request decode failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}
