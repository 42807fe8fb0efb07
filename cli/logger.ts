import { pino, type Logger } from 'pino';

export type LogFormat = 'pretty' | 'json';

/**
 * Readable lines for a person at a terminal, JSON lines for everything else (a pipe, a file, a
 * journal, a collector). `--log-format` overrides the guess; `--log-pretty` is its older
 * spelling of `pretty`.
 */
export function chooseLogFormat(flag: 'auto' | LogFormat, legacyPretty: boolean, stderrIsTerminal: boolean): LogFormat {
  if (flag !== 'auto') return flag;
  if (legacyPretty) return 'pretty';
  return stderrIsTerminal ? 'pretty' : 'json';
}

/**
 * Writes are buffered: a synchronous write to a slow pipe (a log shipper falling behind) would
 * stall DNS and HTTP answers; pino flushes the buffer when the process exits.
 */
export async function createLogger(level: string, format: LogFormat): Promise<Logger> {
  const options = { level, base: { pid: process.pid } };
  if (format === 'json') return pino(options, pino.destination({ dest: 2, sync: false }));
  // Loaded only when asked for: every agent on every host would otherwise carry it (~2 MB).
  const { default: pinoPretty } = await import('pino-pretty');
  // One line an event (fields after the message), as people grep and tail them; the PID is noise there.
  return pino(options, pinoPretty({ colorize: process.stderr.isTTY === true, destination: 2, singleLine: true, ignore: 'pid' }));
}
