/**
 * DNS response-cache memory under hostile query mixes, in-process (no sockets: the
 * responder is driven directly, so what grows is the cache, not socket buffers).
 *
 *   npm run bench:dns-cache-memory -- [--smoke] [--queries 50000]
 *   (= node --expose-gc --import tsx test/bench/dns-cache-memory.ts …)
 *
 * Each scenario gets a fresh responder over the same catalog (70 services of 30 instances,
 * so SRV and A answers are truncated at every UDP size); the heap, external memory and RSS
 * are read after a full GC before and after it, with the responder still referenced.
 */
import { parseArgs } from 'node:util';
import { Packet } from 'dns2';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import type { Responder } from '../../shared/dns/responder.js';
import type { CacheStats } from '../../shared/dns/response-cache.js';
import { instance, nodeReg } from '../support/services.js';
import { testResponder } from '../fixtures/dns/harness.js';
import { buildQuery } from '../fixtures/dns/raw.js';
import { mb, report, type Figure } from './support/report.js';

const { values } = parseArgs({ options: { queries: { type: 'string' }, smoke: { type: 'boolean', default: false } } });
const { smoke } = values;
const QUERIES = Number(values.queries ?? (smoke ? 2000 : 50_000));
const SERVICES = 70;
const INSTANCES = 30;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

async function catalog(): Promise<MemoryStore> {
  const store = new MemoryStore({ startIndex: 1 });
  for (let n = 0; n < INSTANCES; n++) {
    const services = Array.from({ length: SERVICES }, (_, s) =>
      instance({ id: `n${n}:s${s}`, name: `s${s}`, address: `10.${s}.${n}.1`, port: 20000 + n }),
    );
    await store.replaceNode(nodeReg(`n${n}`, `10.200.${n}.1`), services);
  }
  return store;
}

type Scenario = (i: number) => Buffer;
/** The last scenario's responder: referenced, so its cache is measured, and let go by the next. */
let live: Responder | undefined;

const scenarios: Record<string, Scenario> = {
  'EDNS-size variants (70 names x sizes 512-1232, SRV/A)': (i) => {
    const size = 512 + (Math.floor(i / SERVICES) % 721);
    return buildQuery(`s${i % SERVICES}.service.consul`, i % 2 ? Packet.TYPE.SRV : Packet.TYPE.A, { id: i & 0xffff, ednsSize: size });
  },
  'distinct non-existent names (A, EDNS 1232)': (i) => buildQuery(`x${i}.service.consul`, Packet.TYPE.A, { id: i & 0xffff, ednsSize: 1232 }),
  'distinct non-existent names, random qtype and EDNS size': (i) =>
    buildQuery(`y${i}.service.consul`, (i * 7919) & 0xffff, { id: i & 0xffff, ednsSize: 512 + ((i * 104729) % 721) }),
  'distinct .addr names (A, EDNS 1232)': (i) => buildQuery(`0a${(i + 0x100000).toString(16)}.addr.consul`, Packet.TYPE.A, { id: i & 0xffff, ednsSize: 1232 }),
  'one name x 65,536 qtypes': (i) => {
    // Written by hand: dns2 turns qtype 0 into ANY.
    const query = buildQuery('s1.service.consul', Packet.TYPE.A, { id: i & 0xffff });
    query.writeUInt16BE(i & 0xffff, query.length - 4);
    return query;
  },
};

interface Usage {
  heap: number;
  external: number;
  rss: number;
}

function usage(): Usage {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss };
}

function run(store: MemoryStore, make: Scenario, count: number): { before: Usage; after: Usage; answered: number; ms: number; cache: CacheStats } {
  const responder = testResponder(store.query);
  live = undefined;
  let answered = 0;
  const reply = (): void => void answered++;
  const before = usage();
  const started = performance.now();
  for (let i = 0; i < count; i++) responder.handle(make(i), 'udp', reply);
  const ms = performance.now() - started;
  live = responder;
  return { before, after: usage(), answered, ms, cache: responder.cacheStats };
}

const store = await catalog();
const results: Record<string, unknown> = {};
const figures: Figure[] = [];
for (const [label, make] of Object.entries(scenarios)) {
  const count = label.includes('65,536') && !smoke ? 65_536 : QUERIES;
  const r = run(store, make, count);
  results[label] = { count, ...r };
  const grew = (k: keyof Usage): string => mb(r.after[k] - r.before[k]);
  const held = (t: keyof CacheStats): string => `${r.cache[t].names} names / ${r.cache[t].answers} answers / ${mb(r.cache[t].bytes)}`;
  figures.push({
    label: `${label}: ${count} queries`,
    value: `heap +${grew('heap')}, external +${grew('external')}, RSS ${mb(r.before.rss)} -> ${mb(r.after.rss)}; cached: catalog ${held('catalog')}, other ${held('other')} (${(r.ms / 1000).toFixed(1)} s)`,
  });
  if (r.answered !== count) throw new Error(`${label}: ${r.answered} of ${count} answered`);
}
await report('dns-cache-memory', `bench:dns-cache-memory DNS response cache under hostile query mixes${smoke ? ' [smoke]' : ''}`, figures, { results }, [
  'in-process: queries are handed to the responder directly; heap and external measured after a full GC',
]);
