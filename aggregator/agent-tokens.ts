import { tokenDigest } from './token-digest.js';
import { readFileSync } from 'node:fs';
import { looseMode } from '../shared/file-mode.js';

/**
 * The `--agent-tokens` file: one `NODE-NAME TOKEN` per line (blank lines and `#` comment lines
 * ignored); a token lets its agent register that node name only. A node may have several
 * tokens (to rotate one); one token for two nodes is an error, since it could not say which.
 * Tokens are kept only as SHA-256 digests, and no message ever quotes one.
 */

/** What a token file says: token digest (hex) → the node name it covers. */
export interface AgentTokenTable {
  readonly byDigest: ReadonlyMap<string, string>;
  /** Distinct node names (case-insensitive). */
  readonly nodes: number;
}

/** A bad token file; the message names the line, never its token. */
export class AgentTokensError extends Error {
  override readonly name = 'AgentTokensError';
}

/** Longest node name an agent's hello may carry. */
const MAX_NODE_NAME = 253;

/** Parses a token file's text; throws AgentTokensError naming the first bad line. */
export function parseAgentTokens(text: string): AgentTokenTable {
  const byDigest = new Map<string, string>();
  const lineOf = new Map<string, number>();
  const nodes = new Set<string>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const n = i + 1;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) {
      throw new AgentTokensError(`line ${n}: expected "NODE-NAME TOKEN", got ${fields.length} field${fields.length === 1 ? '' : 's'}`);
    }
    const [node, token] = fields as [string, string];
    if (node.length > MAX_NODE_NAME) throw new AgentTokensError(`line ${n}: node name longer than ${MAX_NODE_NAME} characters`);
    const digest = tokenDigest(token);
    const earlier = byDigest.get(digest);
    if (earlier !== undefined && earlier.toLowerCase() !== node.toLowerCase()) {
      throw new AgentTokensError(`line ${n}: the token of node ${node} is also on line ${lineOf.get(digest)} for node ${earlier}; a token covers one node`);
    }
    byDigest.set(digest, node);
    lineOf.set(digest, n);
    nodes.add(node.toLowerCase());
  }
  return { byDigest, nodes: nodes.size };
}

export interface AgentTokensFile {
  path: string;
  table: AgentTokenTable;
  /** The file's permission bits when group or others may read or write it (else undefined). */
  looseMode?: number;
}

/** Reads and parses the file; throws AgentTokensError (unreadable, or a bad line) with the path in the message. */
export function readAgentTokens(path: string): AgentTokensFile {
  let text: string;
  let mode: number | undefined;
  try {
    mode = looseMode(path);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentTokensError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const table = parseAgentTokens(text);
    return { path, table, ...(mode === undefined ? {} : { looseMode: mode }) };
  } catch (err) {
    if (err instanceof AgentTokensError) throw new AgentTokensError(`${path} ${err.message}`);
    throw err;
  }
}
