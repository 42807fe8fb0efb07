import { HEADER_LEN, QTYPE } from './wire.js';

export interface Edns {
  /** The client's advertised UDP payload size. */
  size: number;
  version: number;
}

export interface ParsedQuestion {
  /**
   * The wire-format name with ASCII letters lower-cased, as a latin1 string: DNS names
   * compare case-insensitively (RFC 4343), so this is the cache key.
   */
  key: string;
  /** Offset just past QTYPE/QCLASS: bytes [12, end) are echoed verbatim in the answer. */
  end: number;
  qtype: number;
  qclass: number;
  edns: Edns | undefined;
}

const MAX_LABEL = 63;
const MAX_NAME = 255;
const DOT = 0x2e;
/** Scratch space for lower-casing; a name is at most 255 bytes. */
const scratch = Buffer.alloc(MAX_NAME);

/**
 * Decodes the one question and the optional OPT record of a query whose header passed
 * guardHeader. Hand-written because it runs for every packet and dns2's bit-by-bit
 * reader costs more than the whole rest of a cached answer. Returns undefined for
 * anything malformed (FORMERR). Compression pointers are refused in the question: the
 * only earlier bytes are the header, so a pointer there can never be valid.
 */
export function parseQuestion(msg: Buffer): ParsedQuestion | undefined {
  const nameEnd = scanName(msg);
  if (nameEnd < 0 || nameEnd + 4 > msg.length) return undefined;
  const end = nameEnd + 4;
  let edns: Edns | undefined;
  if (msg.readUInt16BE(10) === 1) {
    const opt = parseOpt(msg, end);
    if (opt === null) return undefined;
    edns = opt;
  }
  const length = nameEnd - HEADER_LEN;
  for (let i = 0; i < length; i++) {
    const b = msg[HEADER_LEN + i]!;
    scratch[i] = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
  }
  return {
    key: scratch.toString('latin1', 0, length),
    end,
    qtype: msg.readUInt16BE(nameEnd),
    qclass: msg.readUInt16BE(nameEnd + 2),
    edns,
  };
}

/**
 * Returns the offset after the name, or -1. Labels holding a '.' byte are refused: they
 * could not round-trip through dotted text, and no real client sends them.
 */
function scanName(msg: Buffer): number {
  let off = HEADER_LEN;
  for (;;) {
    if (off >= msg.length) return -1;
    const len = msg[off]!;
    if (len === 0) return off + 1;
    if (len > MAX_LABEL) return -1;
    const next = off + 1 + len;
    if (next - HEADER_LEN >= MAX_NAME || next > msg.length) return -1;
    for (let i = off + 1; i < next; i++) if (msg[i] === DOT) return -1;
    off = next;
  }
}

/**
 * The single additional record. Only an OPT (root owner, type 41) means anything to us;
 * any other well-formed record (a TSIG we cannot verify, say) is ignored. Returns null
 * when the record overruns the message.
 */
function parseOpt(msg: Buffer, off: number): Edns | undefined | null {
  if (off >= msg.length) return null;
  if (msg[off] !== 0) return undefined;
  if (off + 11 > msg.length) return null;
  if (msg.readUInt16BE(off + 1) !== QTYPE.OPT) return undefined;
  const rdlength = msg.readUInt16BE(off + 9);
  if (off + 11 + rdlength > msg.length) return null;
  return { size: msg.readUInt16BE(off + 3), version: msg[off + 6]! };
}

/** Splits a key (lower-cased wire name) into its labels. */
export function labelsOf(key: string): string[] {
  const labels: string[] = [];
  let off = 0;
  while (off < key.length) {
    const len = key.charCodeAt(off);
    if (len === 0) break;
    labels.push(key.slice(off + 1, off + 1 + len));
    off += 1 + len;
  }
  return labels;
}
