import { FLAG, HEADER_LEN, RCODE } from './wire.js';

export const ACCEPT = -1;
export const DROP = -2;

/**
 * Checks the 12-byte header before any decoder walks the message: dns2's parser loops
 * over every section count it is given, so a 12-byte packet claiming 65535 records costs
 * over a second of CPU. Only standard queries with exactly one question, no answer or
 * authority records and at most one additional (the OPT) pass.
 *
 * Returns ACCEPT, DROP (nothing sensible to answer: too short to carry an ID, or a
 * response, which must never be answered lest two servers bounce packets forever), or
 * the RCODE to answer with.
 */
export function guardHeader(msg: Buffer): number {
  if (msg.length < HEADER_LEN) return DROP;
  const flags = msg[2]!;
  if (flags & FLAG.QR) return DROP;
  if (flags & FLAG.OPCODE) return RCODE.NOTIMP;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 1) return RCODE.FORMERR;
  return ACCEPT;
}
