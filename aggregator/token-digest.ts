import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Secrets (agent and API tokens) are kept only as SHA-256 digests: a table keyed by them says
 * nothing of the tokens, and comparisons are of equal-length inputs.
 */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A set of tokens, compared in constant time. */
export class TokenSet {
  readonly #digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = [...new Set(tokens)].map(binaryDigest);
  }

  get size(): number {
    return this.#digests.length;
  }

  /** Every digest is compared, whether an earlier one matched or not: the time says nothing of which. */
  has(presented: string): boolean {
    const d = binaryDigest(presented);
    let found = false;
    for (const t of this.#digests) found = timingSafeEqual(d, t) || found;
    return found;
  }
}

function binaryDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
