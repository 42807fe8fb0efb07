import type { RawData } from 'ws';
import type * as z from 'zod/mini';
import { clipForLog } from './truncate.js';

export type ParsedFrame<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Deeper than any message of the protocol nests (a check inside a service inside a snapshot is
 * 5 levels). JSON.parse of a 100,000-deep frame holds the event loop ~150 ms; counting the depth
 * first costs ~2 ms a MiB, so such a frame is refused before it is parsed.
 */
export const MAX_FRAME_DEPTH = 32;

/**
 * One WebSocket frame of the protocol, checked against `schema`. The error is clipped (a key in
 * it can be a megabyte of client input) to fit a log line; a close reason cuts it shorter still.
 */
export function parseFrame<T>(schema: z.ZodMiniType<T>, data: RawData, isBinary: boolean): ParsedFrame<T> {
  if (isBinary) return { ok: false, error: 'binary frames are not part of the protocol' };
  const bytes = frameBuffer(data);
  if (!withinDepth(bytes, MAX_FRAME_DEPTH)) return { ok: false, error: `message nested deeper than ${MAX_FRAME_DEPTH} levels` };
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

/** False when brackets outside strings nest deeper than `max` (the text need not be valid JSON). */
function withinDepth(bytes: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return false;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return true;
}

const [QUOTE, BACKSLASH, OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT] = ['"', '\\', '[', ']', '{', '}'].map((c) => c.charCodeAt(0));
