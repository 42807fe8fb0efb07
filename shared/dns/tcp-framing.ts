/** RFC 1035 §4.2.2: over TCP every message is preceded by its length in two bytes. */

export function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 2);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/**
 * Splits a byte stream into length-prefixed messages. A length of zero or above
 * `maxLength` is a protocol error (reported once; the caller closes the connection),
 * so a client cannot make us buffer 64 KiB for a query that is never a real one.
 */
export class FramedReader {
  #buffered: Buffer = Buffer.alloc(0);
  #failed = false;

  constructor(
    private readonly maxLength: number,
    private readonly onMessage: (msg: Buffer) => void,
    private readonly onError: (reason: string) => void,
  ) {}

  /** True while part of a message has arrived but not all of it. */
  get partial(): boolean {
    return this.#buffered.length > 0;
  }

  push(chunk: Buffer): void {
    if (this.#failed) return;
    let buf = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    while (buf.length >= 2) {
      const length = buf.readUInt16BE(0);
      if (length === 0 || length > this.maxLength) {
        this.#failed = true;
        this.#buffered = Buffer.alloc(0);
        return this.onError(`bad length prefix ${length}`);
      }
      if (buf.length < length + 2) break;
      const msg = buf.subarray(2, length + 2);
      buf = buf.subarray(length + 2);
      this.onMessage(msg);
      if (this.#failed) return;
    }
    this.#buffered = buf;
  }

  /** Stops delivering messages (the connection is going away). */
  stop(): void {
    this.#failed = true;
  }
}
