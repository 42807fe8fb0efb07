import { Packet, type Resource } from 'dns2';
import type { RecordGroup, Rr } from './records.js';
import { FLAG, HEADER_LEN, QCLASS, QTYPE } from './wire.js';

/**
 * One resource record encoded by dns2 on its own, uncompressed. dns2 encodes a whole
 * message through a bit array that is re-materialised after every record (quadratic:
 * minutes for a few thousand records), so it only ever sees one small record at a time;
 * this module lays the records out and adds the name compression.
 */
export interface EncodedRr {
  name: string;
  bytes: Buffer;
  /** Wire length of the owner name at the start of `bytes`. */
  ownerLength: number;
  /** SRV only: the target, written uncompressed (RFC 2782), which later owners can point to. */
  target: string | undefined;
}

export interface EncodedGroup {
  answers: EncodedRr[];
  additionals: EncodedRr[];
}

export interface EncodeOptions {
  qname: string;
  qtype: number;
  /** May exceed 15 (extended, EDNS only): the upper bits go in the OPT record. */
  rcode: number;
  ra: boolean;
  /** Largest message allowed. */
  limit: number;
  /** Set TC when records had to be dropped (UDP; over TCP there is nothing to retry with). */
  markTruncation: boolean;
  /** UDP size to advertise in an OPT record; undefined: the query had no OPT. */
  ednsSize: number | undefined;
}

const POINTER = 0xc000;
/** A compression pointer has 14 bits of offset. */
const MAX_POINTER_TARGET = 0x3fff;
const RR_FIXED = 10;
const SRV_FIXED = 6;
const OPT_LENGTH = 11;

/**
 * Records already encoded, by content: after a change only the records that changed cost
 * dns2 time. Only catalog records belong here (see encodeRecord).
 */
const encodedRecords = new Map<string, EncodedRr>();
const MAX_ENCODED_RECORDS = 100_000;

type RecordEncoder = (rr: Rr) => EncodedRr;

/**
 * Encodes a record that comes from the catalog, remembering it: the same records recur in
 * every answer rebuilt after a change. Records that do not (an `.addr` answer owned by
 * whatever name the client asked) go through encodeOnce, or a client could fill the memo.
 */
export function encodeRecord(rr: Rr): EncodedRr {
  const key = JSON.stringify(rr);
  let encoded = encodedRecords.get(key);
  if (!encoded) {
    encoded = encodeOnce(rr);
    if (encodedRecords.size >= MAX_ENCODED_RECORDS) encodedRecords.delete(encodedRecords.keys().next().value!);
    encodedRecords.set(key, encoded);
  }
  return encoded;
}

export function encodeOnce(rr: Rr): EncodedRr {
  const bytes = Packet.Resource.encode({ ...rr } as Resource, new Packet.Writer());
  const target = rr.type === QTYPE.SRV ? rr.target : undefined;
  return { name: rr.name, bytes, ownerLength: nameWireLength(rr.name), target };
}

/** A group encoded on first use: a truncated answer never pays for the groups it drops. */
export type LazyGroup = () => EncodedGroup;

export function lazyGroup(group: RecordGroup, encode: RecordEncoder = encodeRecord): LazyGroup {
  let encoded: EncodedGroup | undefined;
  return () => (encoded ??= { answers: group.answers.map(encode), additionals: group.additionals.map(encode) });
}

/** Where each kept record goes: at `offset`, its owner replaced by a pointer to `pointTo` if set. */
interface Placed {
  rr: EncodedRr;
  pointTo: number | undefined;
}

/**
 * Builds the response: whole groups are kept in order while they fit the limit, the
 * rest dropped (TC set on UDP). Owners equal to the question name point at it; an SRV
 * target's address record points at the target inside the SRV. The question is written
 * lower-case; the responder echoes the query's own bytes over it.
 */
export function encodeResponse(groups: readonly LazyGroup[], authority: readonly EncodedRr[], opts: EncodeOptions): Buffer {
  const question = questionBytes(opts.qname, opts.qtype);
  const optLength = opts.ednsSize === undefined ? 0 : OPT_LENGTH;
  const authLength = authority.reduce((n, rr) => n + rr.bytes.length, 0);
  const fixed = HEADER_LEN + question.length + optLength;
  const keepAuthority = fixed + authLength <= opts.limit;
  let size = fixed + (keepAuthority ? authLength : 0);
  let answerEnd = HEADER_LEN + question.length;
  const answers: Placed[] = [];
  const additionals: Placed[] = [];
  const targets = new Map<string, number>();
  let kept = 0;
  for (const group of groups) {
    const layout = layoutGroup(group(), opts.qname, answerEnd, targets);
    if (size + layout.size > opts.limit) break;
    size += layout.size;
    answerEnd += layout.answerSize;
    answers.push(...layout.answers);
    additionals.push(...layout.additionals);
    for (const [name, offset] of layout.targets) targets.set(name, offset);
    kept++;
  }
  const truncated = kept < groups.length || !keepAuthority;
  const out = Buffer.alloc(size);
  out[2] = FLAG.QR | FLAG.AA | (truncated && opts.markTruncation ? FLAG.TC : 0);
  out[3] = (opts.ra ? FLAG.RA : 0) | (opts.rcode & 0x0f);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(answers.length, 6);
  out.writeUInt16BE(keepAuthority ? authority.length : 0, 8);
  out.writeUInt16BE(additionals.length + (optLength ? 1 : 0), 10);
  let off = HEADER_LEN + question.copy(out, HEADER_LEN);
  for (const placed of answers) off = writePlaced(out, off, placed);
  if (keepAuthority) for (const rr of authority) off += rr.bytes.copy(out, off);
  for (const placed of additionals) off = writePlaced(out, off, placed);
  if (opts.ednsSize !== undefined) writeOpt(out, off, opts.ednsSize, opts.rcode >> 4);
  return out;
}

interface GroupLayout {
  size: number;
  answerSize: number;
  answers: Placed[];
  additionals: Placed[];
  targets: Map<string, number>;
}

function layoutGroup(group: EncodedGroup, qname: string, answerStart: number, known: ReadonlyMap<string, number>): GroupLayout {
  const layout: GroupLayout = { size: 0, answerSize: 0, answers: [], additionals: [], targets: new Map() };
  let off = answerStart;
  for (const rr of group.answers) {
    const pointTo = rr.name === qname ? HEADER_LEN : undefined;
    const ownerLength = pointTo === undefined ? rr.ownerLength : 2;
    const targetAt = off + ownerLength + RR_FIXED + SRV_FIXED;
    if (rr.target !== undefined && !known.has(rr.target) && targetAt <= MAX_POINTER_TARGET) layout.targets.set(rr.target, targetAt);
    const length = ownerLength + rr.bytes.length - rr.ownerLength;
    layout.answers.push({ rr, pointTo });
    off += length;
    layout.answerSize += length;
  }
  layout.size = layout.answerSize;
  for (const rr of group.additionals) {
    if (known.has(rr.name) && !layout.targets.has(rr.name)) continue;
    const pointTo = layout.targets.get(rr.name) ?? known.get(rr.name);
    layout.additionals.push({ rr, pointTo });
    layout.size += pointTo === undefined ? rr.bytes.length : 2 + rr.bytes.length - rr.ownerLength;
  }
  return layout;
}

function writePlaced(out: Buffer, off: number, { rr, pointTo }: Placed): number {
  if (pointTo === undefined) return off + rr.bytes.copy(out, off);
  out.writeUInt16BE(POINTER | pointTo, off);
  return off + 2 + rr.bytes.copy(out, off + 2, rr.ownerLength);
}

function writeOpt(out: Buffer, off: number, udpSize: number, extendedRcode: number): void {
  out[off] = 0;
  out.writeUInt16BE(QTYPE.OPT, off + 1);
  out.writeUInt16BE(udpSize, off + 3);
  out.writeUInt32BE((extendedRcode & 0xff) * 0x1000000, off + 5);
  out.writeUInt16BE(0, off + 9);
}

/** Written by hand: dns2 writes names bit by bit, which cost more than the rest of an NXDOMAIN. */
function questionBytes(qname: string, qtype: number): Buffer {
  const nameLength = nameWireLength(qname);
  const out = Buffer.alloc(nameLength + 4);
  let off = 0;
  for (const label of qname.split('.')) {
    if (!label) continue;
    out[off] = label.length;
    off += 1 + out.write(label, off + 1, 'latin1');
  }
  out.writeUInt16BE(qtype, nameLength);
  out.writeUInt16BE(QCLASS.IN, nameLength + 2);
  return out;
}

function nameWireLength(name: string): number {
  return name.split('.').reduce((n, label) => (label ? n + label.length + 1 : n), 1);
}
