import type { Logger } from 'pino';
import type { CatalogQuery } from '../catalog.js';
import { encodeRecord, encodeResponse, lazyGroup, type LazyGroup } from './encoder.js';
import { ACCEPT, DROP, guardHeader } from './header-guard.js';
import { labelsOf, parseQuestion, type ParsedQuestion } from './question.js';
import type { Recursor, Reply } from './recursor.js';
import { buildAnswer } from './records.js';
import { ResponseCache, type CachedAnswer } from './response-cache.js';
import { route, type Zones } from './router.js';
import { CLASSIC_UDP_SIZE, FLAG, HEADER_LEN, MAX_MESSAGE, QCLASS, RCODE, errorResponse } from './wire.js';

export type Transport = 'udp' | 'tcp';

export interface ResponderOptions {
  query: CatalogQuery;
  zones: Zones;
  serviceTtl: number;
  nodeTtl: number;
  recursor: Recursor | undefined;
  /** Cap on the EDNS0 UDP size a client may ask for. */
  udpMaxSize: number;
  logger: Logger;
  /** Distinct names kept in the response cache. */
  cacheNames?: number;
  /** Told of every answer sent (for metrics); `startedMs` is performance.now() at arrival. */
  observe?: AnswerObserver;
}

export type AnswerObserver = (response: Buffer, startedMs: number) => void;

/** Shuffled variants kept per answer with more than one record group. */
const VARIANTS = 4;
const ERROR_LOG_INTERVAL_MS = 1000;

/**
 * The chain every packet goes through, transport-independent: header guard → question
 * parser → response cache → (on a miss) router → answer builder → dns2 encoder. A hit
 * costs one Map lookup, one topic index comparison and a copy with the ID, the RD/CD
 * bits and the question's original bytes (0x20 case randomisation) patched in.
 */
export class Responder {
  readonly #opts: ResponderOptions;
  readonly #cache: ResponseCache;
  readonly #ra: boolean;
  #lastErrorLog = 0;
  #suppressedErrors = 0;

  constructor(opts: ResponderOptions) {
    this.#opts = opts;
    this.#cache = new ResponseCache(opts.query, opts.cacheNames ?? 50_000);
    this.#ra = opts.recursor !== undefined;
  }

  /**
   * Answers one message and never throws. Returns false when the message is dropped
   * unanswered; otherwise `reply` is called exactly once, now or later (recursion).
   * `msg` is only lent for the call (batched UDP reuses its receive buffers): nothing
   * here may keep it.
   */
  handle(msg: Buffer, transport: Transport, send: Reply): boolean {
    const verdict = guardHeader(msg);
    if (verdict === DROP) return false;
    const reply = this.#observed(send);
    try {
      if (verdict === ACCEPT) this.#answer(msg, transport, reply);
      else reply(errorResponse(msg, verdict, this.#ra));
    } catch (err) {
      // Transports' replies never throw, so nothing has been sent for this message yet.
      this.#logError(err);
      reply(errorResponse(msg, RCODE.SERVFAIL, this.#ra));
    }
    return true;
  }

  #observed(send: Reply): Reply {
    const observe = this.#opts.observe;
    if (!observe) return send;
    const started = performance.now();
    return (response) => {
      send(response);
      observe(response, started);
    };
  }

  #answer(msg: Buffer, transport: Transport, reply: Reply): void {
    const q = parseQuestion(msg);
    if (!q) return reply(errorResponse(msg, RCODE.FORMERR, this.#ra));
    if (q.qclass !== QCLASS.IN && q.qclass !== QCLASS.ANY) return reply(errorResponse(msg, RCODE.REFUSED, this.#ra, q.end));
    if (q.edns && q.edns.version !== 0) return reply(this.#badVersion(msg, q));
    const limit = this.#sizeLimit(q, transport);
    const key = ResponseCache.variantKey(q.qtype, limit, q.edns !== undefined);
    const entry = this.#cache.get(q.key, key) ?? this.#build(q, transport, limit, key);
    if (entry.forward) return this.#forward(msg, q, transport, reply);
    reply(patch(ResponseCache.next(entry), msg, q.end));
  }

  #sizeLimit(q: ParsedQuestion, transport: Transport): number {
    if (transport === 'tcp') return MAX_MESSAGE;
    if (!q.edns) return CLASSIC_UDP_SIZE;
    return Math.min(Math.max(q.edns.size, CLASSIC_UDP_SIZE), this.#opts.udpMaxSize);
  }

  #build(q: ParsedQuestion, transport: Transport, limit: number, key: number): CachedAnswer {
    const { query, zones, serviceTtl, nodeTtl, recursor } = this.#opts;
    const labels = labelsOf(q.key);
    const qname = labels.join('.');
    const set = buildAnswer(route(labels, q.qtype, zones), qname, q.qtype, {
      query,
      zones,
      serviceTtl,
      nodeTtl,
      recursion: recursor !== undefined,
    });
    const opts = {
      qname,
      qtype: q.qtype,
      rcode: set.rcode,
      ra: this.#ra,
      limit,
      markTruncation: transport === 'udp',
      ednsSize: q.edns ? Math.min(Math.max(q.edns.size, CLASSIC_UDP_SIZE), this.#opts.udpMaxSize) : undefined,
    };
    const groups = set.groups.map(lazyGroup);
    const authority = set.authority.map(encodeRecord);
    const entry: CachedAnswer = {
      topic: set.topic,
      index: set.topic === undefined ? 0 : query.topicIndex(set.topic),
      forward: set.forward,
      variants: new Array<Buffer | undefined>(set.groups.length > 1 ? VARIANTS : 1),
      cursor: 0,
      render: () => encodeResponse(shuffled(groups), authority, opts),
    };
    this.#cache.set(q.key, key, entry);
    return entry;
  }

  #forward(msg: Buffer, q: ParsedQuestion, transport: Transport, reply: Reply): void {
    const recursor = this.#opts.recursor!;
    // The recursor keeps the query until the upstream answers; msg is only lent (see handle).
    const query = Buffer.from(msg);
    if (transport === 'udp') recursor.forwardUdp(query, q.end, reply);
    else recursor.forwardTcp(query, q.end, reply);
  }

  /** RFC 6891 §6.1.3: an OPT version we do not speak gets BADVERS and our own OPT (version 0). */
  #badVersion(msg: Buffer, q: ParsedQuestion): Buffer {
    const labels = labelsOf(q.key);
    const encoded = encodeResponse([], [], {
      qname: labels.join('.'),
      qtype: q.qtype,
      rcode: RCODE.BADVERS,
      ra: this.#ra,
      limit: CLASSIC_UDP_SIZE,
      markTruncation: true,
      ednsSize: this.#opts.udpMaxSize,
    });
    return patch(encoded, msg, q.end);
  }

  #logError(err: unknown): void {
    const now = Date.now();
    if (now - this.#lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.#suppressedErrors++;
      return;
    }
    this.#opts.logger.error({ err, suppressed: this.#suppressedErrors }, 'dns: failed to answer a query');
    this.#lastErrorLog = now;
    this.#suppressedErrors = 0;
  }
}

/** A copy of the cached response carrying this query's ID, RD/CD bits and question bytes. */
function patch(cached: Buffer, msg: Buffer, questionEnd: number): Buffer {
  const out = Buffer.allocUnsafe(cached.length);
  // TypedArray#set and a byte loop: Buffer#copy's native call costs more than these few bytes.
  out.set(cached);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out[2] = (cached[2]! & ~FLAG.RD) | (msg[2]! & FLAG.RD);
  out[3] = (cached[3]! & ~FLAG.CD) | (msg[3]! & FLAG.CD);
  for (let i = HEADER_LEN; i < questionEnd; i++) out[i] = msg[i]!;
  return out;
}

function shuffled(groups: readonly LazyGroup[]): LazyGroup[] {
  const out = [...groups];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
