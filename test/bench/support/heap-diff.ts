/**
 * Compares two V8 heap snapshots by what their objects are: count and self size per
 * (node type, constructor or function name), sorted by growth. Run with a large heap, a
 * snapshot's JSON is several times the heap it describes:
 *
 *   node --max-old-space-size=8192 --import tsx test/bench/support/heap-diff.ts BEFORE AFTER [--top 40]
 *
 * With --retainers "TYPE NAME" (e.g. "closure " for anonymous functions, "object Buffer")
 * it shows instead what holds the objects of that kind: counts by holder and edge name.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Tally {
  count: number;
  size: number;
}

const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string', 'number']);

/** A node's "type<TAB>name" key; strings are grouped as one kind, not by their text. */
function keyer(s: Snapshot): (node: number) => string {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [typeAt, nameAt] = [fields.indexOf('type'), fields.indexOf('name')];
  return (i) => {
    const type = types[s.nodes[i + typeAt]!]!;
    return `${type}\t${STRING_TYPES.has(type) ? '' : s.strings[s.nodes[i + nameAt]!]!.slice(0, 80)}`;
  };
}

/** (type, name) → count and total self size. */
export function tally(s: Snapshot): Map<string, Tally> {
  const fields = s.snapshot.meta.node_fields;
  const sizeAt = fields.indexOf('self_size');
  const key = keyer(s);
  const out = new Map<string, Tally>();
  for (let i = 0; i < s.nodes.length; i += fields.length) {
    const k = key(i);
    const t = out.get(k) ?? { count: 0, size: 0 };
    t.count++;
    t.size += s.nodes[i + sizeAt]!;
    out.set(k, t);
  }
  return out;
}

/** For nodes whose key is `target`: how many are referenced from each (holder key, edge name). */
export function retainers(s: Snapshot, target: string): Map<string, number> {
  const nf = s.snapshot.meta.node_fields;
  const ef = s.snapshot.meta.edge_fields;
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const [countAt, eTypeAt, eNameAt, eToAt] = [nf.indexOf('edge_count'), ef.indexOf('type'), ef.indexOf('name_or_index'), ef.indexOf('to_node')];
  const key = keyer(s);
  const out = new Map<string, number>();
  let e = 0;
  for (let i = 0; i < s.nodes.length; i += nf.length) {
    const edgesEnd = e + s.nodes[i + countAt]! * ef.length;
    for (; e < edgesEnd; e += ef.length) {
      const type = edgeTypes[s.edges[e + eTypeAt]!]!;
      if (type === 'weak' || key(s.edges[e + eToAt]!) !== target) continue;
      const nameOrIndex = s.edges[e + eNameAt]!;
      const edge = type === 'element' || type === 'hidden' ? `[${type}]` : s.strings[nameOrIndex]!;
      const k = `${key(i)} .${edge}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

async function load(file: string): Promise<Snapshot> {
  return JSON.parse(await readFile(file, 'utf8')) as Snapshot;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '40' }, retainers: { type: 'string' } }, allowPositionals: true });
  const [beforeFile, afterFile] = positionals;
  if (!beforeFile || !afterFile) throw new Error('usage: heap-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--top N] [--retainers "TYPE NAME"]');
  const top = Number(values.top);
  if (values.retainers !== undefined) {
    const target = values.retainers.replace(' ', '\t');
    const [b, a] = [retainers(await load(beforeFile), target), retainers(await load(afterFile), target)];
    const held = [...new Set([...b.keys(), ...a.keys()])].map((k) => ({ k, d: (a.get(k) ?? 0) - (b.get(k) ?? 0), n: a.get(k) ?? 0 }));
    console.log(`references to ${values.retainers} by holder and edge (Δ, after):`);
    for (const r of held.sort((x, y) => Math.abs(y.d) - Math.abs(x.d)).slice(0, top)) console.log(`${String(r.d).padStart(9)} ${String(r.n).padStart(9)}  ${r.k}`);
    return;
  }
  const [before, after] = [tally(await load(beforeFile)), tally(await load(afterFile))];
  const keys = new Set([...before.keys(), ...after.keys()]);
  const total = (m: Map<string, Tally>): number => [...m.values()].reduce((n, t) => n + t.size, 0);
  const rows = [...keys]
    .map((key) => {
      const b = before.get(key) ?? { count: 0, size: 0 };
      const a = after.get(key) ?? { count: 0, size: 0 };
      return { key, dCount: a.count - b.count, dSize: a.size - b.size, count: a.count, size: a.size };
    })
    .sort((x, y) => Math.abs(y.dSize) - Math.abs(x.dSize))
    .slice(0, top);
  const mb = (n: number): string => (n / 2 ** 20).toFixed(2).padStart(8);
  console.log(`self size: before ${mb(total(before))} MB, after ${mb(total(after))} MB`);
  console.log(`${'Δ MB'.padStart(8)} ${'Δ count'.padStart(9)} ${'MB'.padStart(8)} ${'count'.padStart(9)}  type  name`);
  for (const r of rows) {
    console.log(`${mb(r.dSize)} ${String(r.dCount).padStart(9)} ${mb(r.size)} ${String(r.count).padStart(9)}  ${r.key}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
