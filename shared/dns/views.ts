import { Responder, type DnsHandler, type ResponderOptions, type Transport } from './responder.js';
import type { DnsQuery } from './query.js';
import type { Reply } from './recursor.js';

/**
 * Who sees what (split horizon): the view an asker's address gets, by key, with the query that
 * answers it; undefined for the default view. Answers differ per view only through the query.
 */
export interface Horizon {
  viewOf(asker: string): { key: string; query: DnsQuery } | undefined;
}

/** Views kept at once: a host has few distinct sets of Docker networks among its askers. */
const MAX_VIEWS = 64;

/**
 * One Responder per view, each with its own response cache, so a cached answer is never
 * served to an asker of another view; the default view answers everyone else. A view not
 * used for a while gives its place to a new one (its cache goes with it).
 */
export class ViewedResponder implements DnsHandler {
  readonly #options: ResponderOptions;
  readonly #horizon: Horizon;
  readonly #default: Responder;
  readonly #views = new Map<string, Responder>();

  constructor(options: ResponderOptions, horizon: Horizon) {
    this.#options = options;
    this.#horizon = horizon;
    this.#default = new Responder(options);
  }

  handle(msg: Buffer, transport: Transport, send: Reply, relay = true, asker?: () => string): boolean {
    const view = asker && this.#horizon.viewOf(asker());
    return (view ? this.#responder(view.key, view.query) : this.#default).handle(msg, transport, send, relay);
  }

  #responder(key: string, query: DnsQuery): Responder {
    let responder = this.#views.get(key);
    if (responder) {
      // Most recently used last: the first is the one to give up.
      this.#views.delete(key);
    } else {
      if (this.#views.size >= MAX_VIEWS) this.#views.delete(this.#views.keys().next().value!);
      responder = new Responder({ ...this.#options, query });
    }
    this.#views.set(key, responder);
    return responder;
  }
}
