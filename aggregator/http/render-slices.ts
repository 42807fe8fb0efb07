/**
 * Loop time one slice of a long piece of work (building an answer, writing answers to many
 * watchers) may take before it yields, so DNS, agents and other requests are served between.
 */
export const SLICE_MS = 4;

/** Containers with more children than this are serialised child by child, in slices. */
const SPLIT_CHILDREN = 64;

/**
 * Cuts work that grows with the catalog into slices of about SLICE_MS of loop time, with a
 * turn of the event loop (setImmediate) between them. Knows the answer's JSON style, so
 * builds can serialise entries as they make them.
 */
export class Slicer {
  #until = performance.now() + SLICE_MS;

  constructor(readonly pretty: boolean) {}

  /** Undefined while the slice lasts; past it, a promise resolved after the event loop turned. */
  pause(): Promise<void> | undefined {
    if (performance.now() < this.#until) return undefined;
    return new Promise((resolve) =>
      setImmediate(() => {
        this.#until = performance.now() + SLICE_MS;
        resolve();
      }),
    );
  }

  /** Runs `each` on every item in order, yielding between slices. */
  async each<T>(items: Iterable<T>, each: (item: T) => void): Promise<void> {
    for (const item of items) {
      const turn = this.pause();
      if (turn) await turn;
      each(item);
    }
  }

  /** Array.prototype.flatMap (one level), in slices. */
  async flatMap<T, U>(items: Iterable<T>, each: (item: T) => readonly U[]): Promise<U[]> {
    const out: U[] = [];
    await this.each(items, (item) => {
      for (const u of each(item)) out.push(u);
    });
    return out;
  }

  /**
   * The JSON array of every item's entries, each serialised as soon as it is made: entries that
   * all lived until the end made every young-generation GC copy them (15-30 ms a pass at 20,000).
   * Only as the whole body: sliceJson writes it verbatim.
   */
  async jsonArray<T>(items: Iterable<T>, each: (item: T) => readonly unknown[]): Promise<JsonChunks> {
    const out = new ChunkWriter();
    const inner = this.pretty ? '\n    ' : '';
    let first = true;
    out.push('[');
    for (const item of items) {
      const turn = this.pause();
      if (turn) await out.flushAnd(turn);
      for (const entry of each(item)) {
        out.push(first ? inner : `,${inner}`);
        out.push(leafJson(entry, 1, this.pretty) ?? 'null');
        first = false;
      }
    }
    out.push(first || !this.pretty ? ']' : '\n]');
    return out.done();
  }
}

/** A body already serialised, as UTF-8 chunks. */
export class JsonChunks {
  constructor(readonly chunks: Buffer[]) {}
}

/** Text collected for the current slice, turned into a UTF-8 chunk at each pause. */
class ChunkWriter {
  readonly #chunks: Buffer[] = [];
  #text: string[] = [];

  push(s: string): void {
    this.#text.push(s);
  }

  async flushAnd(turn: Promise<void>): Promise<void> {
    this.#chunks.push(Buffer.from(this.#text.join('')));
    this.#text = [];
    await turn;
  }

  done(): JsonChunks {
    this.#chunks.push(Buffer.from(this.#text.join('')));
    return new JsonChunks(this.#chunks);
  }
}

/**
 * Builds an answer's body. Called in the event-loop turn its X-Consul-Index is read, it
 * captures the store's views the answer reads (immutable: references only, nothing that grows
 * with the catalog) and returns the build, which runs in slices and never reads the store, so
 * the body is the catalog at that index whatever changes meanwhile.
 */
export type Render = () => (slicer: Slicer) => Promise<unknown>;

/**
 * `JSON.stringify(value, null, slicer.pretty ? 4 : undefined)`, byte for byte, in slices: the
 * top container and any container with many children are written child by child. Kept as
 * chunks: joining 20 MB into one Buffer held the loop 20-70 ms.
 */
export async function sliceJson(value: unknown, slicer: Slicer): Promise<Buffer[]> {
  if (value instanceof JsonChunks) return value.chunks;
  const out = new ChunkWriter();
  await writeJson(value, 0, slicer, out, true);
  return out.done().chunks;
}

/** A plain array or object (no toJSON) that is worth writing child by child. */
function splittable(value: unknown, top: boolean): value is Record<string, unknown> | unknown[] {
  if (typeof value !== 'object' || value === null || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  const size = Array.isArray(value) ? value.length : Object.keys(value).length;
  return size > 0 && (top || size > SPLIT_CHILDREN);
}

async function writeJson(value: unknown, depth: number, slicer: Slicer, out: ChunkWriter, top = false): Promise<void> {
  const { pretty } = slicer;
  if (!splittable(value, top)) {
    out.push(leafJson(value, depth, pretty) ?? 'null');
    return;
  }
  const isArray = Array.isArray(value);
  const keys = isArray ? undefined : Object.keys(value);
  const size = keys ? keys.length : (value as unknown[]).length;
  const inner = pretty ? `\n${'    '.repeat(depth + 1)}` : '';
  let first = true;
  out.push(isArray ? '[' : '{');
  for (let i = 0; i < size; i++) {
    const key = keys?.[i];
    const child = key === undefined ? (value as unknown[])[i] : (value as Record<string, unknown>)[key];
    if (key !== undefined && !hasJson(child)) continue;
    const turn = slicer.pause();
    if (turn) await out.flushAnd(turn);
    out.push(first ? inner : `,${inner}`);
    if (key !== undefined) out.push(`${JSON.stringify(key)}:${pretty ? ' ' : ''}`);
    await writeJson(child, depth + 1, slicer, out);
    first = false;
  }
  if (!first) out.push(pretty ? `\n${'    '.repeat(depth)}` : '');
  out.push(isArray ? ']' : '}');
}

/** JSON.stringify drops object members whose value has no JSON form. */
function hasJson(value: unknown): boolean {
  return value !== undefined && typeof value !== 'function' && typeof value !== 'symbol';
}

/** JSON.stringify of a value nested `depth` containers deep (its inner lines indented to match). */
function leafJson(value: unknown, depth: number, pretty: boolean): string | undefined {
  if (!pretty) return JSON.stringify(value) as string | undefined;
  const text = JSON.stringify(value, null, 4) as string | undefined;
  return depth === 0 || text === undefined ? text : text.replaceAll('\n', `\n${'    '.repeat(depth)}`);
}
