import { setFlagsFromString } from 'node:v8';

/**
 * V8 heap and compiler settings per role, set when the command starts rather than on node's
 * command line, which both roles share (the Docker image, the bin, `portolan dev`). V8 reads
 * these as it goes (measured in the benchmarks), so setting them before the role's work
 * begins is enough; Node documents setting flags at runtime only with "use with care".
 * The young generation's size is the exception: V8 fixes it when the heap is set up (set here it
 * changed nothing, measured on Node 24), so it is NODE_FLAGS, on node's command line.
 */

/**
 * Node flags for every role, given on node's command line by the image's entrypoint and the
 * systemd units (NODE_OPTIONS), and by the tests and benchmarks, which run the CLI as those do.
 * From Node 22, V8 sizes the young generation from the machine's memory, up to 64 MB per
 * semi-space (three of them) on hosts with over 2 GB; Node 20 stopped at 16. With 16, an
 * aggregator under a burst holds ~100 MB less RSS on Node 24 (5,000 held blocking queries: +110
 * -> +66 MB; 50,000 distinct DNS names: +13 -> +4 MB from the 25,000th), which the fault tests'
 * memory bounds hold it to. Not in the shebang: `env -S` is not in busybox (Alpine, minimal images).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

/**
 * How far past the live set V8 lets the old generation grow before its next full GC. Left
 * to itself V8 picks up to 300 % when collecting looks cheap. Under churn the catalog's
 * replaced views and the DNS answers they invalidate die in the old generation, so the heap,
 * and RSS with it, climbed to whatever V8 allowed: in bench:fleet 180 MB committed for 98 MB
 * live. With 30 % the full GCs come more often but mark a heap of about 100 MB, mostly
 * concurrently.
 */
export function tuneForAggregator(): void {
  setFlagsFromString('--heap-growing-percent=30');
}

/**
 * --lite-mode, and the two compilers it turns off by name: from V8 12 (Node 22) --lite-mode set at
 * runtime no longer does (its implications are resolved as V8 starts; on Node 24 a function was
 * still optimized after it), while --no-opt and --no-maglev still take effect (node-flags.test.ts).
 */
const LITE = ['--lite-mode', '--no-opt', '--no-maglev'];

/**
 * An agent runs on every Docker host and mostly waits for Docker events, so it trades speed
 * for memory: --optimize-for-size keeps its young generation and heap headroom small, and
 * --lite-mode gives up the optimizing compiler and the data it keeps (bench:agent, 200
 * containers: RSS idle 57 -> 51 MB, storm peak 62 -> 55 MB, storm CPU 4.1-4.4 -> 4.3-4.6 %).
 * Not with --local-dns: answering DNS is then the agent's hot path, and without the optimizing
 * compiler it answered at 0.42-0.43 x dnsmasq's rate, with it 0.89-1.05 x (bench:local-dns, 2,000
 * names; RSS at idle after +3-5 MB).
 */
export function tuneForAgent(o: { localDns: boolean }): void {
  for (const flag of ['--optimize-for-size', ...(o.localDns ? [] : LITE)]) setFlagsFromString(flag);
}
