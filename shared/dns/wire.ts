/**
 * DNS wire constants and the few responses built straight from the query's bytes
 * (no dns2 involved): they must work even when nothing past the header can be trusted.
 */

export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const QCLASS = { IN: 1, ANY: 255 } as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (EDNS) code: 16 = upper 8 bits 1 in OPT, lower 4 bits 0 in the header. */
  BADVERS: 16,
} as const;

export const HEADER_LEN = 12;
/** RFC 1035 §4.2.1: the UDP payload every client accepts. */
export const CLASSIC_UDP_SIZE = 512;
export const MAX_MESSAGE = 65535;

/** Header flag masks (byte 2 and byte 3). */
export const FLAG = {
  QR: 0x80,
  OPCODE: 0x78,
  AA: 0x04,
  TC: 0x02,
  RD: 0x01,
  RA: 0x80,
  CD: 0x10,
} as const;

/**
 * A response carrying only the header (and the question, when `questionEnd` says it
 * parsed): FORMERR, NOTIMP, SERVFAIL. ID, opcode, RD and CD come from the query.
 */
export function errorResponse(msg: Buffer, rcode: number, ra: boolean, questionEnd = HEADER_LEN): Buffer {
  const out = Buffer.alloc(questionEnd);
  msg.copy(out, 0, 0, questionEnd);
  out[2] = FLAG.QR | (msg[2]! & (FLAG.OPCODE | FLAG.RD));
  out[3] = (ra ? FLAG.RA : 0) | (msg[3]! & FLAG.CD) | (rcode & 0x0f);
  out.writeUInt16BE(questionEnd > HEADER_LEN ? 1 : 0, 4);
  out.fill(0, 6, HEADER_LEN);
  return out;
}
