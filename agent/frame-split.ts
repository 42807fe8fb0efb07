import { MAX_NAMES_PER_MESSAGE, type Delta, type Snapshot, type WatchedName } from '../shared/protocol.js';

/** A snapshot or delta as WebSocket text frames, each within the aggregator's max payload. */
export interface Frames {
  /** In order; every frame but the last says `more: true`. */
  frames: string[];
  /** IDs of entries that fit no frame on their own (left out: the aggregator would refuse them). */
  tooBig: string[];
}

interface Entry {
  id: string;
  json: string;
  bytes: number;
}

const MORE = ',"more":true}';

export function snapshotFrames(snapshot: Snapshot, maxBytes: number): Frames {
  const head = JSON.stringify({ type: 'snapshot', node: snapshot.node });
  return pack(head, [['services', snapshot.services.map((s) => entry(s.id, s))]], maxBytes);
}

export function deltaFrames(delta: Omit<Delta, 'type'>, maxBytes: number): Frames {
  const head = JSON.stringify(delta.node ? { type: 'delta', node: delta.node } : { type: 'delta' });
  const lists: List[] = [
    ['upsert', delta.upsert.map((s) => entry(s.id, s))],
    ['remove', delta.remove.map((id) => entry(id, id))],
  ];
  return pack(head, lists, maxBytes);
}

/** Watch or unwatch messages for `names`, each within maxBytes and MAX_NAMES_PER_MESSAGE names. */
export function nameMessages(type: 'watch' | 'unwatch', names: readonly WatchedName[], maxBytes: number): string[] {
  const open = `{"type":"${type}","names":[`;
  const budget = maxBytes - bytesOf(open) - 2;
  const messages: string[] = [];
  let batch: string[] = [];
  let used = 0;
  for (const n of names) {
    const json = JSON.stringify(n);
    const cost = bytesOf(json) + 1;
    if (batch.length > 0 && (used + cost > budget || batch.length === MAX_NAMES_PER_MESSAGE)) {
      messages.push(`${open}${batch.join(',')}]}`);
      batch = [];
      used = 0;
    }
    batch.push(json);
    used += cost;
  }
  if (batch.length > 0) messages.push(`${open}${batch.join(',')}]}`);
  return messages;
}

type List = [key: string, entries: Entry[]];

/**
 * Packs the lists' entries, in order, into as few frames as fit: each frame is `head` with
 * every list (possibly empty) and `more`. Entries are serialized once, and the frame text
 * is joined from them, so sizes are exact UTF-8 byte counts, not estimates.
 */
function pack(head: string, lists: List[], maxBytes: number): Frames {
  const open = head.slice(0, -1);
  const fixed = bytesOf(open) + bytesOf(MORE) + lists.reduce((n, [key]) => n + bytesOf(`,"${key}":[]`), 0);
  const budget = maxBytes - fixed;
  const frames: string[] = [];
  const tooBig: string[] = [];
  let current = lists.map(() => [] as string[]);
  let used = 0;
  const flush = (more: boolean): void => {
    const body = lists.map(([key], i) => `,"${key}":[${current[i]!.join(',')}]`).join('');
    frames.push(`${open}${body}${more ? MORE : '}'}`);
    current = lists.map(() => []);
    used = 0;
  };
  lists.forEach(([, entries], i) => {
    for (const e of entries) {
      // One more byte for the comma before it (one too many for the first: a safe margin).
      const cost = e.bytes + 1;
      if (cost > budget) {
        tooBig.push(e.id);
        continue;
      }
      if (used + cost > budget) flush(true);
      current[i]!.push(e.json);
      used += cost;
    }
  });
  flush(false);
  return { frames, tooBig };
}

function entry(id: string, value: unknown): Entry {
  const json = JSON.stringify(value);
  return { id, json, bytes: bytesOf(json) };
}

function bytesOf(s: string): number {
  return Buffer.byteLength(s);
}
