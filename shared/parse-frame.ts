import type { RawData } from 'ws';
import type * as z from 'zod/mini';

export type ParsedFrame<T> = { ok: true; value: T } | { ok: false; error: string };

/** One WebSocket frame of the protocol, checked against `schema`; the error fits a close reason. */
export function parseFrame<T>(schema: z.ZodMiniType<T>, data: RawData, isBinary: boolean): ParsedFrame<T> {
  if (isBinary) return { ok: false, error: 'binary frames are not part of the protocol' };
  let json: unknown;
  try {
    json = JSON.parse(data.toString());
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, error: `invalid message: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, value: result.data };
}
