import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, RawServerDefault } from 'fastify';
import type { CatalogQuery, Topic } from '../catalog/query.js';
import { errors } from './errors.js';
import type { RawQuery } from './query-options.js';
import type { Render } from './render-slices.js';

/** The aggregator's fastify instance, whatever logger it was built with. */
export type App<L extends FastifyBaseLogger = FastifyBaseLogger> = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>;

export interface ApiContext {
  query: CatalogQuery;
  datacenter: string;
  /** The aggregator's own node name, for /v1/agent/self. */
  nodeName: string;
  version: string;
}

/**
 * A Consul read endpoint that supports blocking: which topics its answer reads, and how
 * to build it. `prepare` validates every parameter before the request blocks, so a bad
 * one fails at once instead of after the wait; its render builds the body in slices.
 */
export interface BlockingEndpoint<P extends string = string> {
  url: string;
  params: readonly P[];
  topics(params: Readonly<Record<P, string>>): Topic[];
  prepare(ctx: ApiContext, params: Readonly<Record<P, string>>, q: RawQuery): Render;
}

/** Helps TypeScript infer the path parameter names of an endpoint literal. */
export function endpoint<P extends string>(e: BlockingEndpoint<P>): BlockingEndpoint<P> {
  return e;
}

/** A path parameter that must not be empty (`/v1/catalog/service/`). */
export function required(value: string, what: string): string {
  if (value === '') throw errors.missingName(what);
  return value;
}

/**
 * Sends a body as Consul does: compact JSON (indented with ?pretty), `null` allowed. We
 * serialise ourselves so fastify never turns a bare string or null into text/plain.
 */
export function sendJson(reply: FastifyReply, body: unknown, pretty = false): FastifyReply {
  return reply.type('application/json').send(jsonText(body, pretty));
}

/** Consul's JSON: compact, or indented by 4 with ?pretty. */
export function jsonText(body: unknown, pretty: boolean): string {
  return JSON.stringify(body, null, pretty ? 4 : undefined);
}
