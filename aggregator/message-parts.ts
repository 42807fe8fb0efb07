import { MAX_SERVICES, type Delta, type Snapshot } from '../shared/protocol.js';
import { CloseCode } from '../shared/close-codes.js';

/** A snapshot or delta as the store applies it: every part joined. */
export type WholeMessage = Omit<Snapshot, 'more'> | Omit<Delta, 'more'>;

export type PartOutcome =
  | { kind: 'incomplete' }
  | { kind: 'whole'; message: WholeMessage }
  | { kind: 'refused'; code: CloseCode; reason: string };

/**
 * One connection's snapshot or delta arriving in parts (`more: true` on all but the last).
 * Nothing reaches the store until the last part is in, so a host never shows half its
 * services; what is held meanwhile is bounded like a whole message: MAX_SERVICES entries
 * per list and `maxBytes` of frames.
 */
export class MessageParts {
  readonly #maxBytes: number;
  #held: WholeMessage | undefined;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Adds one part of `frameBytes` bytes; the message is whole once a part without `more` came. */
  add(part: Snapshot | Delta, frameBytes: number): PartOutcome {
    const held = this.#held;
    if (held && held.type !== part.type) return refused(CloseCode.invalidMessage, `${part.type} inside a ${held.type} sent in parts`);
    const { more, ...message } = part;
    if (!held && !more) return { kind: 'whole', message };
    const joined = held ? join(held, message) : message;
    this.#bytes += frameBytes;
    const over = this.#bytes > this.#maxBytes ? `${this.#maxBytes} bytes` : overCount(joined);
    if (over) {
      this.#clear();
      return refused(CloseCode.tooBig, `${part.type} in parts over ${over}`);
    }
    if (more) {
      this.#held = joined;
      return { kind: 'incomplete' };
    }
    this.#clear();
    return { kind: 'whole', message: joined };
  }

  #clear(): void {
    this.#held = undefined;
    this.#bytes = 0;
  }
}

/** The later part's node wins (a delta's, when it has one); lists are concatenated (the store dedupes IDs as it would in one frame). */
function join(held: WholeMessage, next: WholeMessage): WholeMessage {
  if (held.type === 'snapshot' && next.type === 'snapshot') {
    held.services.push(...next.services);
    return { ...held, node: next.node };
  }
  if (held.type === 'delta' && next.type === 'delta') {
    held.upsert.push(...next.upsert);
    held.remove.push(...next.remove);
    const node = next.node ?? held.node;
    return node ? { ...held, node } : held;
  }
  return held;
}

function overCount(m: WholeMessage): string | undefined {
  const longest = m.type === 'snapshot' ? m.services.length : Math.max(m.upsert.length, m.remove.length);
  return longest > MAX_SERVICES ? `${MAX_SERVICES} services` : undefined;
}

function refused(code: CloseCode, reason: string): PartOutcome {
  return { kind: 'refused', code, reason };
}
