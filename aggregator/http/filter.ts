import { errors } from './errors.js';

/**
 * Consul's `filter` query parameter: the go-bexpr language, evaluated against each entry
 * of an endpoint's JSON result. Selectors are checked against the endpoint's schema up
 * front, so a typo is a 400 naming the selector rather than an empty answer.
 */

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
  | { kind: 'and' | 'or'; left: Node; right: Node }
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
      const m = /^(-?\d+(?:\.\d+)?(?![\w-]))|^([A-Za-z_][\w\-/]*)/.exec(text.slice(i));
      if (!m) throw fail(`unexpected "${c}" at position ${i}`);
      out.push(m[1] !== undefined ? { t: 'number', v: m[1] } : { t: 'ident', v: m[2]! });
      i += m[0].length;
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

// ---- parser ----

class Parser {
  #pos = 0;
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

  /** `operand (word operand)*`, grouped to the left. */
  #chain(word: 'and' | 'or', operand: () => Node): Node {
    let left = operand();
    while (this.#isWord(word)) {
      this.#pos++;
      left = { kind: word, left, right: operand() };
    }
    return left;
  }

  #not(): Node {
    if (this.#isWord('not')) {
      this.#pos++;
      return { kind: 'not', operand: this.#not() };
    }
    const tok = this.#peek();
    if (tok.t === 'op' && tok.v === '(') {
      this.#pos++;
      const inner = this.#or();
      const close = this.#next();
      if (close.t !== 'op' || close.v !== ')') throw fail(`expected ")" but found ${describe(close)}`);
      return inner;
    }
    return this.#match();
  }

  #match(): Node {
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

/** Every value the path reaches; lists of objects fan out, missing keys reach nothing. */
function reach(entry: unknown, path: readonly string[]): unknown[] {
  let current: unknown[] = [entry];
  for (const seg of path) {
    const next: unknown[] = [];
    for (const v of current) {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) {
        if (item !== null && typeof item === 'object' && Object.hasOwn(item, seg)) {
          next.push((item as Record<string, unknown>)[seg]);
        }
      }
    }
    current = next;
  }
  return current;
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

function holds(op: MatchOp, actual: unknown, expected: string | number | boolean, regex: RegExp | undefined): boolean {
  switch (op) {
    case '==':
      return actual === expected;
    case 'in':
    case 'contains':
      if (Array.isArray(actual)) return actual.includes(expected);
      if (typeof actual === 'string') return actual.includes(String(expected));
      return actual !== null && typeof actual === 'object' && Object.hasOwn(actual, String(expected));
    case 'matches':
      return typeof actual === 'string' && regex!.test(actual);
    case 'is empty':
      return isEmpty(actual);
    default:
      return false;
  }
}

function compileMatch(node: Extract<Node, { kind: 'match' }>, schema: Schema): Predicate {
  const terminal = resolve(schema, node.path);
  if (!ALLOWED[terminal].includes(node.op)) {
    throw fail(`Invalid match operator "${node.op}" for selector "${node.path.join('.')}"`);
  }
  const expected = coerce(terminal, node.value, node.path);
  const op = positive(node.op);
  const negated = op !== node.op;
  let regex: RegExp | undefined;
  if (op === 'matches') {
    try {
      regex = new RegExp(node.value, 'u');
    } catch (err) {
      throw fail(`invalid regular expression "${node.value}": ${(err as Error).message}`);
    }
  }
  return (entry) => {
    const values = reach(entry, node.path);
    // A missing field is empty (so `is empty` holds and every other match fails).
    const any = op === 'is empty' && values.length === 0 ? true : values.some((v) => holds(op, v, expected, regex));
    return negated ? !any : any;
  };
}

function compileNode(node: Node, schema: Schema): Predicate {
  switch (node.kind) {
    case 'and': {
      const [l, r] = [compileNode(node.left, schema), compileNode(node.right, schema)];
      return (e) => l(e) && r(e);
    }
    case 'or': {
      const [l, r] = [compileNode(node.left, schema), compileNode(node.right, schema)];
      return (e) => l(e) || r(e);
    }
    case 'not': {
      const inner = compileNode(node.operand, schema);
      return (e) => !inner(e);
    }
    case 'match':
      return compileMatch(node, schema);
  }
}

const MAX_FILTER_LENGTH = 4096;

/** Parses and checks a filter expression; throws the coded 400 error when it is not valid. */
export function compileFilter(text: string, schema: Schema): Predicate {
  if (text.length > MAX_FILTER_LENGTH) throw fail(`filter longer than ${MAX_FILTER_LENGTH} characters`);
  return compileNode(new Parser(tokenize(text)).parse(), schema);
}
