import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

/** The JSON lines a process writes, kept, with a way to wait for one that matches. */
export class JsonLines {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly #waiters = new Set<() => void>();

  constructor(input: Readable) {
    createInterface({ input }).on('line', (text) => {
      try {
        this.lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        return;
      }
      for (const w of this.#waiters) w();
    });
  }

  waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.lines.find(match);
        if (!hit) return;
        cleanup();
        resolve(hit);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what}: not within ${timeoutMs} ms; last lines:\n${this.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}
