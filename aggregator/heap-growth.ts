import { setFlagsFromString } from 'node:v8';

/**
 * How far past the live set V8 lets the old generation grow before its next full GC. Left
 * to itself V8 picks up to 300 % when collecting looks cheap. Under churn the catalog's
 * replaced views and the DNS answers they invalidate die in the old generation, so the heap,
 * and RSS with it, climbed to whatever V8 allowed: in bench:fleet 180 MB committed for 98 MB
 * live. With 30 % the full GCs come more often but mark a heap of about 100 MB, mostly
 * concurrently.
 */
const HEAP_GROWING_PERCENT = 30;

/** Process-wide; V8 reads the flag each time it sets the next limit, so setting it at start is enough. */
export function boundHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
