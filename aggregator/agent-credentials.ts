import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { certificateNodeNames, namesCover } from '../shared/certificate-names.js';
import { AgentTokensError, readAgentTokens, type AgentTokensFile, type AgentTokenTable } from './agent-tokens.js';
import { tokenDigest, TokenSet } from './token-digest.js';

/** How an agent proved who it is, as audit lines name it (never the secret itself). */
export type CredentialKind = 'none' | 'shared-token' | 'node-token' | 'certificate';

/** One restriction on the node names a connection may speak for. */
interface Limit {
  kind: 'node-token' | 'certificate';
  names: readonly string[];
  /** The node token's digest: the connection is cut if a reload drops it. */
  digest?: string;
}

/** What an agent connection proved at the upgrade. */
export interface Credential {
  /** The narrowest of what it presented: certificate, else node token, else shared token, else none. */
  readonly kind: CredentialKind;
  /** Every one must cover the node name (a certificate and a node token both, when both are configured). */
  readonly limits: readonly Limit[];
}

export type Admission = { ok: true; credential: Credential } | { ok: false; reason: string };

export interface AgentCredentialsOptions {
  /** `--token`: any node name. */
  token?: string;
  /** `--agent-tokens`, read at start (the CLI reports a bad file as a usage error). */
  tokens?: AgentTokensFile;
  /** `--client-ca` is set: the TLS server asked for client certificates and verified them against it. */
  clientCertificates: boolean;
  logger: Logger;
}

/**
 * Who may register which node name. Each configured check applies to every agent connection:
 * with `--client-ca` a verified client certificate, and with `--token` or `--agent-tokens` one of
 * those tokens; the node name in the hello must then be covered by every limit that applies (a
 * node token's node, the certificate's names). A token in the file covers only its node, even if
 * it is also the `--token`; the shared token covers any name.
 */
export class AgentCredentials {
  readonly #log: Logger;
  readonly #shared: TokenSet | undefined;
  readonly #path: string | undefined;
  readonly #clientCertificates: boolean;
  #table: AgentTokenTable | undefined;

  constructor(o: AgentCredentialsOptions) {
    this.#log = o.logger;
    this.#shared = o.token ? new TokenSet([o.token]) : undefined;
    this.#path = o.tokens?.path;
    this.#table = o.tokens?.table;
    this.#clientCertificates = o.clientCertificates;
    if (o.tokens) this.#warnIfLoose(o.tokens);
  }

  /** True when any check is configured (else any host that reaches the aggregator may register any name). */
  get configured(): boolean {
    return this.#shared !== undefined || this.#table !== undefined || this.#clientCertificates;
  }

  /** For the start-up log: which checks apply, no secrets. */
  get summary(): { sharedToken: boolean; nodeTokens?: number; clientCertificates: boolean } {
    return { sharedToken: this.#shared !== undefined, ...(this.#table ? { nodeTokens: this.#table.nodes } : {}), clientCertificates: this.#clientCertificates };
  }

  /** Judges an agent's upgrade request: what it proved, or why it is refused (HTTP 401). */
  admit(req: IncomingMessage): Admission {
    const limits: Limit[] = [];
    if (this.#clientCertificates) {
      const socket = req.socket as TLSSocket;
      const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
      if (!cert || Object.keys(cert).length === 0) return { ok: false, reason: 'client certificate required (--client-ca)' };
      // An OpenSSL code such as UNABLE_TO_VERIFY_LEAF_SIGNATURE (a string, whatever the typings say).
      if (!socket.authorized) return { ok: false, reason: `client certificate not accepted: ${String(socket.authorizationError)}` };
      limits.push({ kind: 'certificate', names: certificateNodeNames(cert) });
    }
    let tokenKind: CredentialKind = 'none';
    if (this.#shared || this.#table) {
      const presented = bearer(req);
      const digest = tokenDigest(presented);
      const node = presented === '' ? undefined : this.#table?.byDigest.get(digest);
      if (node !== undefined) {
        limits.push({ kind: 'node-token', names: [node], digest });
        tokenKind = 'node-token';
      } else if (this.#shared?.has(presented)) {
        tokenKind = 'shared-token';
      } else {
        return { ok: false, reason: 'missing or wrong agent token' };
      }
    }
    return { ok: true, credential: { kind: this.#clientCertificates ? 'certificate' : tokenKind, limits } };
  }

  /** Why the credential does not let its agent speak for `node`, or undefined when it does. */
  refusal(credential: Credential, node: string): { kind: Limit['kind']; reason: string } | undefined {
    for (const limit of credential.limits) {
      if (namesCover(limit.names, node)) continue;
      const what = limit.kind === 'node-token' ? `node token (for ${limit.names[0]})` : `client certificate (names: ${limit.names.join(', ') || 'none'})`;
      return { kind: limit.kind, reason: `node ${node} is not covered by this agent's ${what}` };
    }
    return undefined;
  }

  /** True when a reload dropped the node token this credential was admitted with, or moved it to another node. */
  revoked(credential: Credential): boolean {
    return credential.limits.some((l) => l.digest !== undefined && !namesCover(l.names, this.#table?.byDigest.get(l.digest) ?? ''));
  }

  /**
   * Reads the token file again (SIGHUP). A bad or unreadable file keeps the table in use, logged
   * as an error; returns whether the new one is in use.
   */
  reload(): boolean {
    if (this.#path === undefined) return false;
    let file: AgentTokensFile;
    try {
      file = readAgentTokens(this.#path);
    } catch (err) {
      if (!(err instanceof AgentTokensError)) throw err;
      this.#log.error({ err: err.message }, '--agent-tokens not reloaded: the tokens read at the last (re)load stay in use');
      return false;
    }
    this.#table = file.table;
    this.#warnIfLoose(file);
    this.#log.info({ path: file.path, nodes: file.table.nodes, tokens: file.table.byDigest.size }, '--agent-tokens reloaded');
    return true;
  }

  #warnIfLoose(file: AgentTokensFile): void {
    if (file.looseMode === undefined) return;
    this.#log.warn({ path: file.path, mode: file.looseMode.toString(8).padStart(4, '0') }, '--agent-tokens file is accessible by group or others: chmod 600 it (anyone who can read it can register those nodes)');
  }
}

function bearer(req: IncomingMessage): string {
  const header = req.headers.authorization ?? '';
  return header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
}
