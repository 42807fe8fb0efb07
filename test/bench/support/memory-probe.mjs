// Preloaded (node --import) into the aggregator the benchmarks start, so they can read its
// V8 heap from outside: the parent sends 'memory' on the IPC channel, this answers with
// process.memoryUsage() after a full GC (so heapUsed is the live set, not garbage).
process.on('message', (message) => {
  if (message !== 'memory') return;
  globalThis.gc?.();
  process.send?.(process.memoryUsage());
});
// The channel must not keep the aggregator alive once it has shut down its servers.
process.channel?.unref();
