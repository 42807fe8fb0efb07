import type { Logger } from 'pino';
import type { DnsQuery } from './query.js';
import { encodeOnce, encodeRecord, encodeResponse, lazyGroup, type LazyGroup } from './encoder.js';
import { ACCEPT, DROP, guardHeader } from './header-guard.js';
import { labelsOf, parseQuestion, type ParsedQuestion } from './question.js';
import type { Recursor, Reply } from './recursor.js';
import { answerType, buildAnswer } from './records.js';
import { ResponseCache, type CacheLimits, type CacheStats, type CachedAnswer } from './response-cache.js';
import { route, type Route, type Zones } from './router.js';
import { CLASSIC_UDP_SIZE, FLAG, HEADER_LEN, MAX_MESSAGE, QCLASS, RCODE, errorResponse } from './wire.js';

export type Transport = 'udp' | 'tcp';

/**
 * What the transports hand every message to: a Responder, or a set of them answering each
 * asker from its own view of the catalog (views.ts). `asker` gives the sender's IP address;
 * it is only called where the answer depends on who asks.
 */
export interface DnsHandler {
  handle(msg: Buffer, transport: Transport, send: Reply, relay?: boolean, asker?: () => string): boolean;
}

export interface ResponderOptions {
  query: DnsQuery;
  zones: Zones;
  serviceTtl: number;
  nodeTtl: number;
  recursor: Recursor | undefined;
  /** Cap on the EDNS0 UDP size a client may ask for. */
  udpMaxSize: number;
  logger: Logger;
  /** Bounds of the response cache (defaultCacheLimits). */
  cache?: CacheLimits;
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
export class Responder implements DnsHandler {
  readonly #opts: ResponderOptions;
  readonly #cache: ResponseCache;
  readonly #ra: boolean;
  #lastErrorLog = 0;
  #suppressedErrors = 0;

  constructor(opts: ResponderOptions) {
    this.#opts = opts;
    this.#cache = new ResponseCache(opts.query, opts.cache);
    this.#ra = opts.recursor !== undefined;
  }

  get cacheStats(): CacheStats {
    return this.#cache.stats;
  }

  /**
   * Answers one message and never throws. Returns false when the message is dropped
   * unanswered; otherwise `reply` is called exactly once, now or later (recursion).
   * `msg` is only lent for the call (batched UDP reuses its receive buffers): nothing
   * here may keep it. With `relay` false (its connection has as many queries in flight as
   * it may) a query for the recursor is REFUSED at once instead of waiting upstream.
   */
  handle(msg: Buffer, transport: Transport, send: Reply, relay = true): boolean {
    const verdict = guardHeader(msg);
    if (verdict === DROP) return false;
    const reply = this.#observed(send);
    try {
      if (verdict === ACCEPT) this.#answer(msg, transport, reply, relay);
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

  /** `wait` false: a name still being fetched is answered from what is known (the second try). */
  #answer(msg: Buffer, transport: Transport, reply: Reply, relay: boolean, wait = true): void {
    const q = parseQuestion(msg);
    if (!q) return reply(errorResponse(msg, RCODE.FORMERR, this.#ra));
    if (q.qclass !== QCLASS.IN && q.qclass !== QCLASS.ANY) return reply(errorResponse(msg, RCODE.REFUSED, this.#ra, q.end));
    if (q.edns && q.edns.version !== 0) return reply(this.#badVersion(msg, q));
    const ednsSize = this.#ednsSize(q);
    const entry = transport === 'tcp' ? this.#entry(q, MAX_MESSAGE, false, wait) : this.#udpEntry(q, ednsSize ?? CLASSIC_UDP_SIZE, wait);
    if (entry instanceof Promise) {
      if (relay) return this.#defer(msg, transport, reply, entry);
      return reply(errorResponse(msg, RCODE.REFUSED, this.#ra, q.end));
    }
    if (!entry.forward) return reply(patch(ResponseCache.next(entry), msg, q.end, ednsSize));
    if (relay) return this.#forward(msg, q, transport, reply);
    reply(errorResponse(msg, RCODE.REFUSED, this.#ra, q.end));
  }

  /**
   * A name the query is still fetching (an agent's cache miss): answered once it has it, or
   * has given up, from what it then knows. Like a relayed query, the reply comes later; the
   * message is only lent (see handle), so a copy waits.
   */
  #defer(msg: Buffer, transport: Transport, reply: Reply, known: Promise<void>): void {
    const query = Buffer.from(msg);
    void known.then(() => {
      try {
        this.#answer(query, transport, reply, true, false);
      } catch (err) {
        this.#logError(err);
        reply(errorResponse(query, RCODE.SERVFAIL, this.#ra));
      }
    });
  }

  /**
   * The UDP size only changes the answer through truncation, so the cache is keyed by
   * what the answer's bytes depend on, never by the raw EDNS size: an answer that fits
   * is served to every size it fits, the largest size (the cap, or 512 without EDNS) has
   * its own entry, and smaller ones take the size class at or below them.
   */
  #udpEntry(q: ParsedQuestion, limit: number, wait: boolean): CachedAnswer | Promise<void> {
    const top = q.edns ? this.#opts.udpMaxSize : CLASSIC_UDP_SIZE;
    const full = this.#entry(q, top, true, wait);
    if (full instanceof Promise || limit === top || full.forward || (!full.truncated && full.largest <= limit)) return full;
    return this.#entry(q, sizeClass(limit), true, wait);
  }

  /** The cached answer, else a new one; a promise while the query is fetching the name (see #defer). */
  #entry(q: ParsedQuestion, limit: number, udp: boolean, wait: boolean): CachedAnswer | Promise<void> {
    // TCP is keyed as limit 0: it never sets TC, so it must not share a UDP answer cut at 64 KiB.
    const key = ResponseCache.variantKey(answerType(q.qtype), udp ? limit : 0, q.edns !== undefined);
    const cached = this.#cache.get(q.key, key);
    if (cached) return cached;
    const labels = labelsOf(q.key);
    const routed = route(labels, q.qtype, this.#opts.zones);
    const fetching = wait ? this.#pending(routed) : undefined;
    return fetching ?? this.#build(q, labels, routed, limit, udp, key);
  }

  #pending(routed: Route): Promise<void> | undefined {
    const { query } = this.#opts;
    if (!query.pending) return undefined;
    if (routed.kind === 'service') return query.pending({ kind: 'service', name: routed.service });
    if (routed.kind === 'node') return query.pending({ kind: 'node', name: routed.node });
    if (routed.kind === 'reverse' && routed.address !== undefined) return query.pending({ kind: 'address', name: routed.address });
    return undefined;
  }

  /** The UDP size the OPT record carries back: the client's, within 512 and the cap. */
  #ednsSize(q: ParsedQuestion): number | undefined {
    return q.edns ? Math.min(Math.max(q.edns.size, CLASSIC_UDP_SIZE), this.#opts.udpMaxSize) : undefined;
  }

  #build(q: ParsedQuestion, labels: readonly string[], routed: Route, limit: number, udp: boolean, key: number): CachedAnswer {
    const { query, zones, serviceTtl, nodeTtl, recursor } = this.#opts;
    const qname = labels.join('.');
    const set = buildAnswer(routed, qname, q.qtype, {
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
      markTruncation: udp,
      // Patched per query (see patch): the client's size must not split the cache.
      ednsSize: q.edns ? this.#opts.udpMaxSize : undefined,
    };
    // Answers that do not come from the catalog (.addr, SOA, NS) are owned by names the
    // client chose: their records are not worth remembering across answers. Nor are PTR
    // answers' (owned by the reverse name, one per address).
    const encode = set.topic === undefined || routed.kind === 'reverse' ? encodeOnce : encodeRecord;
    const groups = set.groups.map((g) => lazyGroup(g, encode));
    const authority = set.authority.map(encode);
    const entry: CachedAnswer = {
      topic: set.topic,
      index: set.topic === undefined ? 0 : query.topicIndex(set.topic),
      rcode: set.rcode,
      forward: set.forward,
      variants: new Array<Buffer | undefined>(set.forward ? 0 : set.groups.length > 1 ? VARIANTS : 1),
      cursor: 0,
      render: () => encodeResponse(shuffled(groups), authority, opts),
      largest: 0,
      truncated: false,
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
    return patch(encoded, msg, q.end, undefined);
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

/**
 * A copy of the cached response carrying this query's ID, RD/CD bits, question bytes and,
 * with EDNS, its UDP size in the OPT record (always the last 11 bytes, size at offset 3).
 */
function patch(cached: Buffer, msg: Buffer, questionEnd: number, ednsSize: number | undefined): Buffer {
  const out = Buffer.allocUnsafe(cached.length);
  // TypedArray#set and a byte loop: Buffer#copy's native call costs more than these few bytes.
  out.set(cached);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out[2] = (cached[2]! & ~FLAG.RD) | (msg[2]! & FLAG.RD);
  out[3] = (cached[3]! & ~FLAG.CD) | (msg[3]! & FLAG.CD);
  for (let i = HEADER_LEN; i < questionEnd; i++) out[i] = msg[i]!;
  if (ednsSize !== undefined) {
    out[out.length - 8] = ednsSize >> 8;
    out[out.length - 7] = ednsSize & 0xff;
  }
  return out;
}

/**
 * UDP size classes: 512 · 2^(k/4), each about 19 % above the last, so the sizes up to
 * 65,535 fall in 29 classes. A truncated answer is cut at the class at or below the
 * client's size: it loses under a fifth of the room, and says TC either way.
 */
function sizeClass(limit: number): number {
  return Math.floor(CLASSIC_UDP_SIZE * 2 ** (Math.floor(4 * Math.log2(limit / CLASSIC_UDP_SIZE)) / 4));
}

function shuffled(groups: readonly LazyGroup[]): LazyGroup[] {
  const out = [...groups];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
