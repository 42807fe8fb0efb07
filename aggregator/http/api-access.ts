import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { App } from './endpoint.js';
import { errors } from './errors.js';
import type { TokenSet } from '../token-digest.js';
import { CATALOG_WRITE_ROUTES } from './catalog-writes.js';
import { MAINTENANCE_ROUTE } from './maintenance.js';

/**
 * Access to the HTTP API (--api-token, --metrics-token): a request must bring one of the
 * configured tokens the way Consul clients send theirs, or it is answered 403 before routing
 * reaches a handler (so a refused blocking query or event stream holds nothing). The write
 * routes (the catalog's, maintenance) need an api token too, and without one configured they are refused unless
 * --allow-unauthenticated-writes: reads of an open aggregator are harmless, writes are not.
 */

/**
 * The token of a request, read as Consul reads it (agent/http.go parseTokenInternal): a non-empty
 * `?token=`, else `X-Consul-Token`, else the first word of `Authorization: Bearer …`; '' for none.
 */
export function presentedToken(headers: IncomingHttpHeaders, search: string): string {
  const query = new URLSearchParams(search).get('token');
  if (query) return query;
  const header = headers['x-consul-token'];
  if (typeof header === 'string' && header !== '') return header;
  const [scheme, ...rest] = (headers.authorization ?? '').split(' ');
  if (rest.length === 0 || scheme!.toLowerCase() !== 'bearer') return '';
  return rest.join(' ').trim().split(' ')[0]!.trim();
}

/** `?token=` values replaced, as Consul logs URLs: for any URL, or message quoting one, that is logged. */
export function hideTokens(text: string): string {
  return text.replace(/([?&]token=)[^&#\s"']*/gi, '$1<hidden>');
}

export interface AccessTokens {
  /** Tokens any request needs (but those on the open routes below). */
  api?: TokenSet;
  /** Tokens /metrics needs instead of an api token. */
  metrics?: TokenSet;
  /** --allow-unauthenticated-writes: with no api token, the write routes are open instead of refused. */
  allowUnauthenticatedWrites?: boolean;
}

/**
 * Routes served without a token: Consul's status pings (they say nothing of the catalog;
 * registrator and load balancers' health checks call them) and the UI's static files (the
 * page must load to ask for the token; its data comes from the API, which needs it).
 */
const OPEN_ROUTES = /^\/(v1\/status\/|ui(\/|$))/;

/** Routes that change the catalog: the external nodes' writes, and maintenance through an agent. */
const WRITE_ROUTES: ReadonlySet<string> = new Set([...CATALOG_WRITE_ROUTES, MAINTENANCE_ROUTE]);

/**
 * Which tokens a request for a route pattern needs (undefined: none; 'refused': no token will
 * do). A path no route matches needs an api token.
 */
export function requiredTokens(route: string | undefined, tokens: AccessTokens): TokenSet | 'refused' | undefined {
  if (route !== undefined && WRITE_ROUTES.has(route)) return tokens.api ?? (tokens.allowUnauthenticatedWrites ? undefined : 'refused');
  if (route !== undefined && OPEN_ROUTES.test(route)) return undefined;
  if (route === '/metrics') return tokens.metrics ?? tokens.api;
  return tokens.api;
}

/**
 * Checks the token of every request once routed, by the route's pattern and not the raw path,
 * so no spelling of a URL (dot segments, escapes) reaches a route the check did not judge.
 */
export function registerApiAccess<L extends FastifyBaseLogger>(app: App<L>, tokens: AccessTokens): void {
  app.addHook('onRequest', async (request) => {
    const needed = requiredTokens(request.routeOptions.url, tokens);
    if (!needed) return;
    if (needed === 'refused') throw errors.writesRefused();
    const at = request.url.indexOf('?');
    const presented = presentedToken(request.headers, at < 0 ? '' : request.url.slice(at + 1));
    if (presented === '') throw errors.forbidden('none');
    if (!needed.has(presented)) throw errors.forbidden('unknown');
  });
}
