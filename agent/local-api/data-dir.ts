import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import * as z from 'zod/mini';
import { CheckStatus, text } from '../../shared/model.js';
import { CheckDefinition, ServiceDefinition } from './definitions.js';
import type { RegistryState } from './registry.js';

/**
 * The local API's state in `--data-dir` (as Consul keeps services, checks and check state in its
 * data dir): one JSON file, `local-api.json`, written whole to a temporary file, fsynced and
 * renamed over the old one, so a crash leaves the old state or the new, never half of either.
 * A file that cannot be read back is renamed aside (`local-api.json.corrupt-<time>`) and the
 * agent starts empty: never a crash.
 */

const FILE = 'local-api.json';
const VERSION = 1;

const StateFile = z.object({
  version: z.literal(VERSION),
  services: z.array(ServiceDefinition),
  checks: z.array(z.object({ definition: CheckDefinition, status: CheckStatus, output: text(0, 4096) })),
  maintenance: z.object({ node: z.optional(text(0, 4096)), services: z.record(text(1, 512), text(0, 4096)) }),
});

export class DataDir {
  readonly #dir: string;
  readonly #log: Logger;
  /** The state to write once the write in flight is done; only the newest counts. */
  #pending: RegistryState | undefined;
  #writing: Promise<void> | undefined;

  constructor(dir: string, logger: Logger) {
    this.#dir = dir;
    this.#log = logger.child({ component: 'data-dir' });
  }

  get path(): string {
    return join(this.#dir, FILE);
  }

  /** The saved state; undefined when there is none, or it was unreadable (then set aside and logged). */
  async load(): Promise<RegistryState | undefined> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    let raw: string;
    try {
      raw = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = parse(raw);
    if (parsed.ok) return parsed.state;
    const aside = `${this.path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(this.path, aside);
    this.#log.error({ file: this.path, movedTo: aside, error: parsed.error }, 'local API state file unreadable: set aside, starting without registrations');
    return undefined;
  }

  /** Saves `state` soon; writes never overlap, and a burst of changes ends in one write of the last. */
  save(state: RegistryState): void {
    this.#pending = state;
    this.#writing ??= this.#drain();
  }

  /** Resolves once everything saved so far is on disk. */
  async flushed(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const state = this.#pending;
      this.#pending = undefined;
      try {
        await this.#write(state);
      } catch (err) {
        this.#log.error({ file: this.path, err: (err as Error).message }, 'could not write the local API state file: changes since the last write are lost if the agent restarts');
      }
    }
    this.#writing = undefined;
  }

  async #write(state: RegistryState): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify({ version: VERSION, ...state }));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    // The rename itself is durable only once the directory is.
    const dir = await open(this.#dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

function parse(raw: string): { ok: true; state: RegistryState } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const r = StateFile.safeParse(json);
  if (!r.success) return { ok: false, error: `${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}` };
  const { services, checks, maintenance } = r.data;
  return { ok: true, state: { services, checks, maintenance } };
}
