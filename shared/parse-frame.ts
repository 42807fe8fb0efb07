import type { RawData } from 'ws';
import type * as z from 'zod/mini';
import { MAX_TEXT } from './model.js';
import { clipForLog } from './truncate.js';

export type ParsedFrame<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Deeper than any message of the protocol nests (a check inside a service inside a snapshot is
 * 5 levels). JSON.parse of a 100,000-deep frame holds the event loop ~150 ms; counting the depth
 * first costs ~2 ms a MiB, so such a frame is refused before it is parsed.
 */
export const MAX_FRAME_DEPTH = 32;

/**
 * The most bytes one JSON string of a valid message can take: MAX_TEXT characters, each at
 * most 6 bytes (`\uXXXX`). A longer one (a megabyte key or node name) is refused while the
 * frame is scanned, before it is parsed: parsing and validating it held the event loop
 * 15-120 ms a frame.
 */
export const MAX_FRAME_STRING_BYTES = MAX_TEXT * 6;

/**
 * One WebSocket frame of the protocol, checked against `schema`. The error is clipped (a key in
 * it can be a megabyte of client input) to fit a log line; a close reason cuts it shorter still.
 */
export function parseFrame<T>(schema: z.ZodMiniType<T>, data: RawData, isBinary: boolean): ParsedFrame<T> {
  if (isBinary) return { ok: false, error: 'binary frames are not part of the protocol' };
  const bytes = frameBuffer(data);
  const shape = shapeError(bytes);
  if (shape) return { ok: false, error: shape };
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString());
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, error: clipForLog(`invalid message: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`) };
  }
  return { ok: true, value: result.data };
}

/** The frame's bytes; ws hands a text frame over as one Buffer, fragments as several. */
export function frameBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

/**
 * Why the text cannot be a message of the protocol, from its bytes alone (it need not be valid
 * JSON): brackets outside strings nesting deeper than MAX_FRAME_DEPTH, or a string longer than
 * MAX_FRAME_STRING_BYTES. Undefined when neither.
 */
function shapeError(bytes: Buffer): string | undefined {
  let depth = 0;
  let stringStart = -1;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (stringStart >= 0) {
      if (i - stringStart - 1 > MAX_FRAME_STRING_BYTES) return `message holds a string longer than ${MAX_FRAME_STRING_BYTES} bytes`;
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) stringStart = -1;
    } else if (c === QUOTE) stringStart = i;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > MAX_FRAME_DEPTH) return `message nested deeper than ${MAX_FRAME_DEPTH} levels`;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return undefined;
}

const [QUOTE, BACKSLASH, OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT] = ['"', '\\', '[', ']', '{', '}'].map((c) => c.charCodeAt(0));
