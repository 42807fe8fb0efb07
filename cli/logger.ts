import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

/**
 * JSON logs by default (for collectors); --log-pretty for people reading a terminal. Writes
 * are buffered: a synchronous write to a slow pipe (a log shipper falling behind) would stall
 * DNS and HTTP answers; pino flushes the buffer when the process exits.
 */
export function createLogger(level: string, pretty: boolean): Logger {
  const options = { level, base: { pid: process.pid } };
  return pretty ? pino(options, pinoPretty({ colorize: process.stderr.isTTY, destination: 2 })) : pino(options, pino.destination({ dest: 2, sync: false }));
}
