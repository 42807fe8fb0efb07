import type { FastifyError, FastifyReply } from 'fastify';

/**
 * A coded HTTP error, for the aggregator's API and the agent's local API alike. Every bad
 * request ends as a plain-text body with a stable code in `X-Portolan-Error`, the way Consul
 * answers (text, not JSON), so Consul clients print the message as they would Consul's own.
 * Each side keeps its one registry of these (aggregator/http/errors.ts, agent/local-api/errors.ts).
 */
export class HttpError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A maker of one coded error: call it for an instance, read `.code` to match on. */
export function coded<A extends unknown[]>(code: string, statusCode: number, message: (...args: A) => string) {
  const make = (...args: A): HttpError => new HttpError(code, statusCode, message(...args));
  return Object.assign(make, { code });
}

/** Every failure leaves as text/plain with its status and code, as Consul answers; never a stack. */
export function errorReply(error: FastifyError | HttpError, reply: FastifyReply): FastifyReply {
  const known = error instanceof HttpError || (error.statusCode !== undefined && error.statusCode < 500);
  const status = known ? (error.statusCode ?? 400) : 500;
  const code = known ? (error.code ?? 'PORTOLAN_BAD_REQUEST') : 'PORTOLAN_INTERNAL';
  return reply
    .code(status)
    .type('text/plain; charset=utf-8')
    .header('X-Portolan-Error', code)
    .send(known ? error.message : 'Internal error');
}
