import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

/**
 * One client's Server-Sent Events connection. Output is written in pieces, one per turn in a
 * round shared with every other stream (WriteRounds), and only as fast as the socket drains
 * (`write()` false → wait for 'drain'), so what the aggregator holds for a client
 * is one piece in the socket plus the frames queued behind it, and the frames are the strings
 * every stream shares, not a copy each. A client that falls behind by more than
 * `maxQueuedBytes` of frames, or whose socket takes nothing between two stall checks, is
 * dropped: it is not reading, and a browser's EventSource reconnects to a fresh catalog.
 */

/** Characters per socket write: large enough to batch small pieces, small enough that a copy is cheap. */
export const PIECE_CHARS = 32 * 1024;
/**
 * What one event-loop turn may spend writing streams before DNS and HTTP get theirs: this
 * long or this many characters, whichever comes first. On loopback the kernel takes
 * megabytes before `write()` says full, so without a bound each new stream would render
 * that much of the catalog in one synchronous pass.
 */
const TURN_MS = 4;
export const TURN_CHARS = 256 * 1024;

/**
 * The streams that have something to write and room to write it, served a piece each in
 * turn, for at most TURN_MS or TURN_CHARS per event-loop turn: many streams opening at once
 * share the loop with each other and with everything else, none finishing its catalog first.
 */
export class WriteRounds {
  readonly #waiting: SseWriter[] = [];
  readonly #queued = new Set<SseWriter>();
  #scheduled = false;

  /** Gives `writer` a turn in the coming rounds; it stays in them while it is `ready`. */
  add(writer: SseWriter): void {
    if (this.#queued.has(writer)) return;
    this.#queued.add(writer);
    this.#waiting.push(writer);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#waiting.length === 0) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: the poll phase (sockets, DNS) runs between two turns.
    setImmediate(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    const end = performance.now() + TURN_MS;
    let chars = 0;
    do {
      const writer = this.#waiting.shift()!;
      chars += writer.step();
      if (writer.ready) this.#waiting.push(writer);
      else this.#queued.delete(writer);
    } while (this.#waiting.length > 0 && chars < TURN_CHARS && performance.now() < end);
    this.#schedule();
  }
}

export type DropReason = 'behind' | 'stalled';

interface Queued {
  pieces: Iterable<string>;
  bytes: number;
}

export class SseWriter {
  readonly #res: ServerResponse;
  readonly #rounds: WriteRounds;
  readonly #maxQueuedBytes: number;
  readonly #onDrop: (reason: DropReason, queuedBytes: number) => void;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #current: Iterator<string> | undefined;
  #waitingForDrain = false;
  /** Set by a stall check that found the socket full, cleared by the next 'drain'. */
  #stallSeen = false;

  constructor(res: ServerResponse, rounds: WriteRounds, maxQueuedBytes: number, onDrop: (reason: DropReason, queuedBytes: number) => void) {
    this.#res = res;
    this.#rounds = rounds;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.#onDrop = onDrop;
    res.on('drain', () => {
      this.#waitingForDrain = false;
      this.#stallSeen = false;
      rounds.add(this);
    });
  }

  /** Nothing queued or being written. */
  get idle(): boolean {
    return this.#current === undefined && this.#queue.length === 0;
  }

  /**
   * Queues lazily produced text (a generator runs only when the socket takes its first piece).
   * `bytes` is what it holds in memory while queued: 0 for a generator, a frame's UTF-8 size.
   */
  send(pieces: Iterable<string>, bytes = 0): void {
    if (this.#closed()) return;
    if (!this.idle && this.#queuedBytes + this.#res.writableLength + bytes > this.#maxQueuedBytes) {
      this.#drop('behind');
      return;
    }
    this.#queue.push({ pieces, bytes });
    this.#queuedBytes += bytes;
    if (!this.#waitingForDrain) this.#rounds.add(this);
  }

  /** A socket still full since the previous check has taken nothing for a whole interval. */
  checkStalled(): void {
    if (!this.#waitingForDrain || this.#closed()) return;
    if (this.#stallSeen) this.#drop('stalled');
    else this.#stallSeen = true;
  }

  /** Something to write and room in the socket for it. */
  get ready(): boolean {
    return !this.#closed() && !this.#waitingForDrain && !this.idle;
  }

  /** Writes one piece (when ready); returns its length in characters. */
  step(): number {
    if (!this.ready) return 0;
    if (!this.#current) {
      const next = this.#queue.shift()!;
      this.#queuedBytes -= next.bytes;
      this.#current = batched(next.pieces)[Symbol.iterator]();
    }
    const piece = this.#current.next();
    if (piece.done) {
      this.#current = undefined;
      return 0;
    }
    if (!this.#res.write(piece.value)) this.#waitingForDrain = true;
    return piece.value.length;
  }

  #drop(reason: DropReason): void {
    const queued = this.#queuedBytes + this.#res.writableLength;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#current = undefined;
    this.#res.destroy();
    this.#onDrop(reason, queued);
  }

  #closed(): boolean {
    return this.#res.destroyed || this.#res.writableEnded;
  }
}

/** Joins small pieces and splits large ones into writes of about PIECE_CHARS. */
function* batched(pieces: Iterable<string>): Generator<string> {
  let buffer = '';
  for (const piece of pieces) {
    buffer += piece;
    while (buffer.length >= PIECE_CHARS) {
      const cut = surrogateSafeCut(buffer, PIECE_CHARS);
      yield buffer.slice(0, cut);
      buffer = buffer.slice(cut);
    }
  }
  if (buffer) yield buffer;
}

/** `at`, or one less when that would split a surrogate pair (written apart, each half becomes U+FFFD). */
function surrogateSafeCut(s: string, at: number): number {
  const unit = s.charCodeAt(at - 1);
  return unit >= 0xd800 && unit <= 0xdbff ? at - 1 : at;
}
