// Preloaded (node --import) into the aggregator the benchmarks start, so they can read its
// memory from outside over the IPC channel:
//   'memory'                          → process.memoryUsage() after a full GC (heapUsed is
//                                       the live set, not garbage), plus `spaces`: each V8
//                                       heap space's committed and used bytes
//   { heapSnapshot: '<file>' }        → writes a V8 heap snapshot there, answers { written }
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';

process.on('message', (message) => {
  if (message === 'memory') {
    globalThis.gc?.();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    process.send?.({ ...process.memoryUsage(), spaces });
  } else if (typeof message?.heapSnapshot === 'string') {
    process.send?.({ written: writeHeapSnapshot(message.heapSnapshot) });
  }
});
// The channel must not keep the aggregator alive once it has shut down its servers.
process.channel?.unref();
