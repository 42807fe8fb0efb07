/**
 * Bounds on text that came from a peer (an HTTP client, an agent) before it goes into a
 * log line or a close reason, so one bad request or frame cannot write megabytes of log.
 */

/** Bytes of client input a log field keeps: enough to recognise it, not to flood the log. */
export const LOG_INPUT_BYTES = 200;

/** The longest prefix of `s` that is at most `maxBytes` of UTF-8, never cutting a character. */
export function truncateUtf8(s: string, maxBytes: number): string {
  // Each UTF-16 code unit takes at most 3 UTF-8 bytes: short strings need no encoding.
  if (s.length * 3 <= maxBytes) return s;
  const buf = Buffer.from(s);
  if (buf.length <= maxBytes) return s;
  let end = Math.max(0, maxBytes);
  // Back off continuation bytes (10xxxxxx) to the first byte of the character that was cut.
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.toString('utf8', 0, end);
}

/** `s` for a log line: cut to `maxBytes` and, when cut, marked with the size it had. */
export function clipForLog(s: string, maxBytes = LOG_INPUT_BYTES): string {
  const cut = truncateUtf8(s, maxBytes);
  return cut === s ? s : `${cut}… (${Buffer.byteLength(s)} bytes)`;
}
