import { pino } from 'pino';

/** A logger whose JSON lines are kept, to check what was logged (and how long its lines are). */
export function capturedLogger(level = 'info') {
  const lines: string[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(line) });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, parsed };
}
