/**
 * bench:ha's blocking watchers (support/ha-watch.ts) in a process of their own: parsing a few
 * thousand health answers at once must not stall the simulated hosts' uplinks, which share the
 * benchmark's event loop (a stall of seconds made their aggregator drop them for silence).
 *
 *   node --import tsx test/bench/support/ha-watch-child.ts --http 127.0.0.1:8500
 *
 * Commands are JSON lines on stdin; times are wall-clock ms (performance.timeOrigin + now()):
 *   {"watch":["svc1",…],"expected":{"svc1":["id",…],…}}   start (expected: for withdrawals) → {"started":true}
 *   {"expect":{"name","id","port","sentAt"}}              a change to time
 *   {"stop":true}                                         → {"result":{…}} and exit
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { PassingWatchers } from './ha-watch.js';
import type { Change } from './sim-fleet.js';

const { values } = parseArgs({ options: { http: { type: 'string' }, wait: { type: 'string', default: '60' } } });
if (!values.http) throw new Error('--http HOST:PORT is required');
const emit = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
let watchers: PassingWatchers | undefined;

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { watch?: string[]; expected?: Record<string, string[]>; expect?: Change; stop?: true };
  if (cmd.watch) {
    const expected = cmd.expected ? new Map(Object.entries(cmd.expected).map(([n, ids]) => [n, new Map(ids.map((id) => [id, 0]))])) : undefined;
    watchers = new PassingWatchers({ http: values.http!, waitSeconds: Number(values.wait), retryMs: 100, ...(expected ? { expected: (n: string) => expected.get(n) } : {}) });
    void watchers.start(cmd.watch).then(() => emit({ started: true }));
  } else if (cmd.expect) {
    // The parent's wall clock → this process's performance.now() (one machine, one clock).
    watchers?.expect({ ...cmd.expect, sentAt: cmd.expect.sentAt - performance.timeOrigin });
  } else if (cmd.stop) {
    const w = watchers;
    void (w ? w.stop() : Promise.resolve()).then(() => {
      emit({
        result: {
          latencies: w?.latencies ?? [],
          unseen: w?.unseen ?? 0,
          withdrawn: w?.withdrawn.size ?? 0,
          withdrawnSample: [...(w?.withdrawn ?? [])].slice(0, 50),
          firstWithdrawalAt: w?.firstWithdrawalAt === undefined ? null : performance.timeOrigin + w.firstWithdrawalAt,
          answers: w?.answers ?? 0,
          errors: w?.errors ?? 0,
        },
      });
      process.exit(0);
    });
  }
});
