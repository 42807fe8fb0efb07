/**
 * Go's time.ParseDuration, which Consul uses for `wait`: a sequence of decimal numbers,
 * each with a unit ("300ms", "1m30s", "1.5h"); a bare "0" is allowed. Returns ms, or
 * undefined when the text is not a duration.
 */
const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let total = 0;
  part.lastIndex = 0;
  while (part.lastIndex < rest.length) {
    const m = part.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * unitMs[m[2]!]!;
  }
  return sign * total;
}
