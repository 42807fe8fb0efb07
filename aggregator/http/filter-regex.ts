import { RE2JS, RE2JSException } from 're2js';
import { errors } from './errors.js';

/**
 * `matches` patterns as go-bexpr runs them: Go's regexp (RE2 syntax, an unanchored search
 * on a string value), here on re2js, its port. RE2 matches in time linear in the input, so
 * nested quantifiers cost nothing special; what remains to bound is the program: matching
 * costs up to (instructions × characters), and compiling is ~4 µs an instruction, so a
 * pattern like `a{1000}` repeated is refused before it is compiled.
 */

/** Instructions all the patterns of one filter may expand to (`^web-[0-9]+$` is 11). */
export const MAX_REGEX_INSTRUCTIONS = 64;

/** What the program of an empty pattern holds (fail, the match and its start). */
const PROGRAM_OVERHEAD = 3;

export type StringTest = (value: string) => boolean;

/** Compiles the patterns of one filter against their shared instruction budget. */
export class RegexBudget {
  #left = MAX_REGEX_INSTRUCTIONS;

  compile(pattern: string): StringTest {
    const size = expandedSize(pattern);
    if (size > this.#left) {
      throw errors.filterTooComplex(
        `regular expression ${goQuote(pattern)} is too large: it expands to ${size} instructions, more than the ${this.#left} left of the ${MAX_REGEX_INSTRUCTIONS} a filter's patterns may use`,
      );
    }
    let re: RE2JS;
    try {
      re = RE2JS.compile(pattern);
    } catch (err) {
      if (!(err instanceof RE2JSException)) throw err;
      // go-bexpr's text around Go's own ("error parsing regexp: invalid or unsupported Perl syntax: `(?=`").
      throw errors.badFilter(`Failed to compile regular expression ${goQuote(pattern)}: ${err.message}`);
    }
    this.#left -= size;
    // find() rather than test(): test() tries re2js's lazy DFA first, which rebuilds its states
    // for every input on patterns like `[\s\S]*[0-9][\s\S]{16}$` (2 s over 1,000 values of
    // 512 characters); find() runs what Go runs (one-pass, bit-state backtracker, NFA): 32 ms.
    return (value) => re.matcher(value).find();
  }
}

/** Go's %q for the printable ASCII a pattern is made of. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

const REPEAT = /\{(\d+)(,(\d*))?\}/y;
const GROUP_HEADER = /\(\?(?:P?<\w*>|[a-zA-Z-]*:?)/y;

/**
 * An upper bound of the instructions RE2 compiles `pattern` to, read from its text in one
 * pass with Go's rules (regexp/syntax calcSize): a literal or class is 1, a group +2, `*` +2,
 * `+` and `?` +1, each `|` +1, and `x{n,m}` is m copies of x plus (m - n).
 */
export function expandedSize(pattern: string): number {
  const enclosing: { size: number; last: number }[] = [];
  let size = 0;
  /** The size of the last atom, which a quantifier applies to. */
  let last = 0;
  const atom = (n: number, repeated = n): void => {
    size += n;
    last = repeated;
  };
  const quantified = (n: number): void => {
    size += n - last;
    last = n;
  };
  // Past the last `:]`, a `[:` in a class opens no named class: no need to search (keeps this linear).
  const lastNamedClassEnd = pattern.lastIndexOf(':]');
  for (let i = 0; i < pattern.length; i++) {
    switch (pattern[i]) {
      case '\\': {
        if (pattern[i + 1] === 'Q') {
          const end = pattern.indexOf('\\E', i + 2);
          const stop = end < 0 ? pattern.length : end;
          atom(stop - (i + 2), 1);
          i = end < 0 ? stop : end + 1;
        } else {
          i = escapeEnd(pattern, i);
          atom(1);
        }
        break;
      }
      case '[':
        i = classEnd(pattern, i, lastNamedClassEnd);
        atom(1);
        break;
      case '(':
        enclosing.push({ size, last });
        size = 0;
        last = 0;
        // `(?P<name>`, `(?<name>`, `(?i:`, `(?i)`: what names or flags the group adds no instruction.
        GROUP_HEADER.lastIndex = i;
        if (GROUP_HEADER.test(pattern)) i = GROUP_HEADER.lastIndex - 1;
        break;
      case ')': {
        const inner = size + 2;
        ({ size, last } = enclosing.pop() ?? { size: 0, last: 0 });
        atom(inner);
        break;
      }
      case '|':
        size += 1;
        last = 0;
        break;
      case '*':
        quantified(last + 2);
        break;
      case '+':
      case '?':
        quantified(last + 1);
        break;
      case '{': {
        REPEAT.lastIndex = i;
        const m = REPEAT.exec(pattern);
        if (!m) {
          atom(1);
          break;
        }
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3]);
        quantified(max < 0 ? (min === 0 ? 2 : 1) + min * last : max * last + (max - min));
        i = REPEAT.lastIndex - 1;
        break;
      }
      default:
        atom(1);
    }
  }
  // An unclosed group loses its outer size here; RE2 refuses it at parse time anyway.
  return size + PROGRAM_OVERHEAD;
}

/** The index of the last character of the escape at `start` (`\d`, `\pL`, `\p{Greek}`, `\x{41}`). */
function escapeEnd(pattern: string, start: number): number {
  const kind = pattern[start + 1];
  if ((kind === 'p' || kind === 'P' || kind === 'x') && pattern[start + 2] === '{') {
    const close = pattern.indexOf('}', start + 3);
    return close < 0 ? pattern.length : close;
  }
  return kind === 'p' || kind === 'P' ? start + 2 : start + 1;
}

/** The index of the `]` closing the class at `start`, as Go's parseClass reads it. */
function classEnd(pattern: string, start: number, lastNamedClassEnd: number): number {
  let i = start + 1;
  if (pattern[i] === '^') i++;
  // A `]` first in the class is a literal.
  if (pattern[i] === ']') i++;
  for (; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === ']') return i;
    if (c === '\\') {
      i = escapeEnd(pattern, i);
    } else if (c === '[' && pattern[i + 1] === ':' && i + 2 <= lastNamedClassEnd) {
      // `[:alpha:]`; Go takes the first `:]` and refuses the pattern if that names no class.
      i = pattern.indexOf(':]', i + 2) + 1;
    }
  }
  return pattern.length;
}
