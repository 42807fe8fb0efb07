import { errors } from './errors.js';
import { RegexBudget, type StringTest } from './filter-regex.js';

/**
 * Consul's `filter` query parameter: the go-bexpr language, evaluated against each entry
 * of an endpoint's JSON result. Selectors are checked against the endpoint's schema up
 * front, so a typo is a 400 naming the selector rather than an empty answer.
 *
 * Client input, so every cost is bounded before the first entry is read: the text's length,
 * its nesting (the parser and the evaluator recurse once a level), its number of matches
 * (each is tried on every entry) and its regular expressions' size (filter-regex.ts).
 * Evaluation is then linear in the entries at a bounded cost each.
 */

const MAX_FILTER_LENGTH = 4096;
/** Parentheses and `not`s inside one another. */
const MAX_NESTING = 32;
/** go-bexpr's WithMaxMatches, which Consul leaves unlimited: a 4 kB filter holds ~450. */
const MAX_MATCHES = 64;

export type FieldKind =
  | 'string'
  | 'number'
  | 'bool'
  /** A list of strings (ServiceTags). */
  | 'strings'
  /** A string → string map (ServiceMeta); `.key` selects a value. */
  | 'map'
  | { object: Schema }
  /** A map of objects keyed by any name (ServiceTaggedAddresses.<any>.Address). */
  | { mapOf: Schema }
  /** A list of objects (Checks); a match holds when any element matches. */
  | { list: Schema };

export type Schema = Readonly<Record<string, FieldKind>>;

type MatchOp = '==' | '!=' | 'in' | 'not in' | 'contains' | 'not contains' | 'matches' | 'not matches' | 'is empty' | 'is not empty';

type Node =
  /** `a and b and c` as one node, so a long chain neither recurses nor nests. */
  | { kind: 'and' | 'or'; operands: Node[] }
  | { kind: 'not'; operand: Node }
  | { kind: 'match'; op: MatchOp; path: string[]; value: string };

export type Predicate = (entry: unknown) => boolean;

// ---- tokens ----

type Token =
  | { t: 'ident'; v: string }
  | { t: 'string'; v: string }
  | { t: 'number'; v: string }
  | { t: 'op'; v: '==' | '!=' | '(' | ')' | '.' | '[' | ']' }
  | { t: 'end' };

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'empty', 'contains', 'matches']);

/** A number, or a bare word (selector segment, keyword or unquoted value). */
const WORD = /(-?\d+(?:\.\d+)?(?![\w-]))|([A-Za-z_][\w\-/]*)/y;

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '=' || c === '!') {
      if (text[i + 1] !== '=') throw fail(`unexpected "${c}" at position ${i}`);
      out.push({ t: 'op', v: c === '=' ? '==' : '!=' });
      i += 2;
    } else if ('().[]'.includes(c)) {
      out.push({ t: 'op', v: c as '(' | ')' | '.' | '[' | ']' });
      i++;
    } else if (c === '"') {
      const [v, next] = readQuoted(text, i);
      out.push({ t: 'string', v });
      i = next;
    } else if (c === '`') {
      const end = text.indexOf('`', i + 1);
      if (end < 0) throw fail(`unterminated raw string at position ${i}`);
      out.push({ t: 'string', v: text.slice(i + 1, end) });
      i = end + 1;
    } else {
      WORD.lastIndex = i;
      const m = WORD.exec(text);
      if (!m) throw fail(`unexpected "${c}" at position ${i}`);
      out.push(m[1] !== undefined ? { t: 'number', v: m[1] } : { t: 'ident', v: m[2]! });
      i = WORD.lastIndex;
    }
  }
  out.push({ t: 'end' });
  return out;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', '/': '/' };

function readQuoted(text: string, start: number): [string, number] {
  let v = '';
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') return [v, i + 1];
    if (c === '\\') {
      const e = ESCAPES[text[i + 1] ?? ''];
      if (e === undefined) throw fail(`invalid escape at position ${i}`);
      v += e;
      i++;
    } else {
      v += c;
    }
  }
  throw fail(`unterminated string at position ${start}`);
}

function fail(why: string): Error {
  return errors.badFilter(why);
}

function tooComplex(why: string): Error {
  return errors.filterTooComplex(why);
}

// ---- parser ----

class Parser {
  #pos = 0;
  #depth = 0;
  #matches = 0;
  constructor(readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.#or();
    if (this.#peek().t !== 'end') throw fail(`unexpected ${describe(this.#peek())}`);
    return node;
  }

  #peek(offset = 0): Token {
    return this.tokens[Math.min(this.#pos + offset, this.tokens.length - 1)]!;
  }

  #next(): Token {
    return this.tokens[this.#pos++] ?? { t: 'end' };
  }

  #isWord(word: string, offset = 0): boolean {
    const tok = this.#peek(offset);
    return tok.t === 'ident' && tok.v.toLowerCase() === word;
  }

  #expectWord(word: string): void {
    if (!this.#isWord(word)) throw fail(`expected "${word}" but found ${describe(this.#peek())}`);
    this.#pos++;
  }

  #or(): Node {
    return this.#chain('or', () => this.#and());
  }

  #and(): Node {
    return this.#chain('and', () => this.#not());
  }

  /** `operand (word operand)*`. */
  #chain(word: 'and' | 'or', operand: () => Node): Node {
    const operands = [operand()];
    while (this.#isWord(word)) {
      this.#pos++;
      operands.push(operand());
    }
    return operands.length === 1 ? operands[0]! : { kind: word, operands };
  }

  #not(): Node {
    if (this.#isWord('not')) {
      this.#pos++;
      return { kind: 'not', operand: this.#nested(() => this.#not()) };
    }
    const tok = this.#peek();
    if (tok.t === 'op' && tok.v === '(') {
      this.#pos++;
      const inner = this.#nested(() => this.#or());
      const close = this.#next();
      if (close.t !== 'op' || close.v !== ')') throw fail(`expected ")" but found ${describe(close)}`);
      return inner;
    }
    return this.#match();
  }

  #nested(parse: () => Node): Node {
    if (++this.#depth > MAX_NESTING) throw tooComplex(`filter nests deeper than ${MAX_NESTING} levels of parentheses and "not"`);
    const node = parse();
    this.#depth--;
    return node;
  }

  #match(): Node {
    if (++this.#matches > MAX_MATCHES) throw tooComplex(`Number of match expressions exceeds the limit (${MAX_MATCHES})`);
    const first = this.#peek();
    // `<value> [not] in <selector>`: the left side is a value, not a selector.
    if (first.t === 'string' || first.t === 'number' || this.#isWord('in', 1) || (this.#isWord('not', 1) && this.#isWord('in', 2))) {
      const value = this.#value();
      const negate = this.#isWord('not');
      if (negate) this.#pos++;
      this.#expectWord('in');
      return { kind: 'match', op: negate ? 'not in' : 'in', path: this.#selector(), value };
    }
    const path = this.#selector();
    const tok = this.#peek();
    if (tok.t === 'op' && (tok.v === '==' || tok.v === '!=')) {
      this.#pos++;
      return { kind: 'match', op: tok.v, path, value: this.#value() };
    }
    if (this.#isWord('is')) {
      this.#pos++;
      const negate = this.#isWord('not');
      if (negate) this.#pos++;
      this.#expectWord('empty');
      return { kind: 'match', op: negate ? 'is not empty' : 'is empty', path, value: '' };
    }
    const negate = this.#isWord('not');
    if (negate) this.#pos++;
    for (const word of ['contains', 'matches'] as const) {
      if (this.#isWord(word)) {
        this.#pos++;
        return { kind: 'match', op: negate ? `not ${word}` : word, path, value: this.#value() };
      }
    }
    throw fail(`expected a match operator after "${path.join('.')}" but found ${describe(this.#peek())}`);
  }

  #selector(): string[] {
    const head = this.#next();
    if (head.t !== 'ident' || KEYWORDS.has(head.v.toLowerCase())) throw fail(`expected a selector but found ${describe(head)}`);
    const path = [head.v];
    for (;;) {
      const tok = this.#peek();
      if (tok.t !== 'op' || (tok.v !== '.' && tok.v !== '[')) return path;
      this.#pos++;
      const key = this.#next();
      if (tok.v === '.' && key.t === 'ident') {
        path.push(key.v);
      } else if (tok.v === '[' && key.t === 'string') {
        const close = this.#next();
        if (close.t !== 'op' || close.v !== ']') throw fail(`expected "]" but found ${describe(close)}`);
        path.push(key.v);
      } else {
        throw fail(`unexpected ${describe(key)} in selector "${path.join('.')}"`);
      }
    }
  }

  /** A quoted string, a number, or a bare word (bexpr reads unquoted words as strings). */
  #value(): string {
    const tok = this.#next();
    if (tok.t === 'string' || tok.t === 'number' || (tok.t === 'ident' && !KEYWORDS.has(tok.v.toLowerCase()))) return tok.v;
    throw fail(`expected a value but found ${describe(tok)}`);
  }
}

function describe(tok: Token): string {
  return tok.t === 'end' ? 'end of expression' : `"${tok.v}"`;
}

// ---- selector resolution against a schema ----

type Terminal = 'string' | 'number' | 'bool' | 'strings' | 'map' | 'keyed' | 'list';

const ALLOWED: Record<Terminal, readonly MatchOp[]> = {
  string: ['==', '!=', 'in', 'not in', 'contains', 'not contains', 'matches', 'not matches'],
  number: ['==', '!='],
  bool: ['==', '!='],
  strings: ['in', 'not in', 'contains', 'not contains', 'is empty', 'is not empty'],
  map: ['in', 'not in', 'contains', 'not contains', 'is empty', 'is not empty'],
  keyed: ['in', 'not in', 'contains', 'not contains', 'is empty', 'is not empty'],
  list: ['is empty', 'is not empty'],
};

function resolve(schema: Schema, path: readonly string[]): Terminal {
  let kind: FieldKind | undefined = schema[path[0]!];
  for (let i = 1; kind !== undefined && i < path.length; i++) {
    const seg = path[i]!;
    if (kind === 'map') kind = 'string';
    else if (typeof kind === 'string') kind = undefined;
    else if ('object' in kind) kind = kind.object[seg];
    else if ('list' in kind) kind = kind.list[seg];
    else kind = { object: kind.mapOf };
  }
  if (kind === undefined) throw fail(`Selector "${path.join('.')}" is not valid`);
  if (typeof kind === 'string') return kind;
  if ('list' in kind) return 'list';
  if ('mapOf' in kind) return 'keyed';
  throw fail(`Selector "${path.join('.')}" selects an object; select one of its fields`);
}

// ---- evaluation ----

/** True once `test` holds for a value the path reaches; lists of objects fan out, missing keys reach nothing. */
function reaches(value: unknown, path: readonly string[], at: number, test: (v: unknown) => boolean): boolean {
  if (at === path.length) return test(value);
  if (Array.isArray(value)) return value.some((item) => reaches(item, path, at, test));
  const key = path[at]!;
  if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return false;
  return reaches((value as Record<string, unknown>)[key], path, at + 1, test);
}

function coerce(terminal: Terminal, value: string, path: readonly string[]): string | number | boolean {
  if (terminal === 'number') {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw fail(`"${value}" is not a number for selector "${path.join('.')}"`);
    return n;
  }
  if (terminal === 'bool') {
    if (!/^(true|false)$/i.test(value)) throw fail(`"${value}" is not a boolean for selector "${path.join('.')}"`);
    return value.toLowerCase() === 'true';
  }
  return value;
}

function positive(op: MatchOp): MatchOp {
  return op === '!=' ? '==' : op.startsWith('not ') ? (op.slice(4) as MatchOp) : op === 'is not empty' ? 'is empty' : op;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

/** The positive operator's test of one reached value. */
function holds(op: MatchOp, expected: string | number | boolean, regex: StringTest | undefined): (actual: unknown) => boolean {
  const text = String(expected);
  switch (op) {
    case '==':
      return (actual) => actual === expected;
    case 'in':
    case 'contains':
      return (actual) => {
        if (Array.isArray(actual)) return actual.includes(text);
        if (typeof actual === 'string') return actual.includes(text);
        return actual !== null && typeof actual === 'object' && Object.hasOwn(actual, text);
      };
    case 'matches':
      return (actual) => typeof actual === 'string' && regex!(actual);
    default:
      return () => false;
  }
}

function compileMatch(node: Extract<Node, { kind: 'match' }>, schema: Schema, regexes: RegexBudget): Predicate {
  const terminal = resolve(schema, node.path);
  if (!ALLOWED[terminal].includes(node.op)) {
    throw fail(`Invalid match operator "${node.op}" for selector "${node.path.join('.')}"`);
  }
  const expected = coerce(terminal, node.value, node.path);
  const op = positive(node.op);
  const negated = op !== node.op;
  const { path } = node;
  if (op === 'is empty') {
    // A missing field is empty (so `is empty` holds and every other match fails).
    return (entry) => {
      let reached = false;
      const empty = reaches(entry, path, 0, (v) => ((reached = true), isEmpty(v)));
      return negated !== (empty || !reached);
    };
  }
  const test = holds(op, expected, op === 'matches' ? regexes.compile(node.value) : undefined);
  return (entry) => negated !== reaches(entry, path, 0, test);
}

function compileNode(node: Node, schema: Schema, regexes: RegexBudget): Predicate {
  switch (node.kind) {
    case 'and': {
      const all = node.operands.map((n) => compileNode(n, schema, regexes));
      return (e) => all.every((p) => p(e));
    }
    case 'or': {
      const any = node.operands.map((n) => compileNode(n, schema, regexes));
      return (e) => any.some((p) => p(e));
    }
    case 'not': {
      const inner = compileNode(node.operand, schema, regexes);
      return (e) => !inner(e);
    }
    case 'match':
      return compileMatch(node, schema, regexes);
  }
}

/**
 * Parses and checks a filter expression, compiling its regular expressions once for all the
 * entries; throws the coded 400 error when it is not valid or past a bound.
 */
export function compileFilter(text: string, schema: Schema): Predicate {
  if (text.length > MAX_FILTER_LENGTH) throw tooComplex(`filter longer than ${MAX_FILTER_LENGTH} characters`);
  return compileNode(new Parser(tokenize(text)).parse(), schema, new RegexBudget());
}
