import { pino, type Logger } from 'pino';

/**
 * JSON logs by default (for collectors); --log-pretty for people reading a terminal. Writes
 * are buffered: a synchronous write to a slow pipe (a log shipper falling behind) would stall
 * DNS and HTTP answers; pino flushes the buffer when the process exits.
 */
export async function createLogger(level: string, pretty: boolean): Promise<Logger> {
  const options = { level, base: { pid: process.pid } };
  if (!pretty) return pino(options, pino.destination({ dest: 2, sync: false }));
  // Loaded only when asked for: every agent on every host would otherwise carry it (~2 MB).
  const { default: pinoPretty } = await import('pino-pretty');
  return pino(options, pinoPretty({ colorize: process.stderr.isTTY, destination: 2 }));
}
