import type { Logger } from 'pino';
import type { CredentialKind } from './agent-credentials.js';

/**
 * Audit lines: one log line per registration, replacement, refusal and reap of a node, and per
 * catalog write to an external node (/v1/catalog/register, /deregister) and maintenance set
 * through an agent (/v1/portolan/maintenance/:node), with a
 * stable `audit` field to select them by, and the same fields on each (those not known where
 * the event happens are left out: a reap has no connection). Never a secret: a credential is
 * named by its kind only.
 */
export type AuditEvent = 'register' | 'replace' | 'refuse' | 'reap' | 'external-register' | 'external-deregister' | 'maintenance';

export interface AuditFields {
  node?: string;
  /** The Docker engine ID from the agent's hello (or the node's record, for a reap). */
  engineId?: string;
  /** The agent connection's (or the HTTP client's) remote address. */
  remote?: string;
  credential?: CredentialKind;
  /** Anything else the event has to say (close code, reason, the replaced connection…). */
  [more: string]: unknown;
}

export function audit(log: Logger, level: 'info' | 'warn', event: AuditEvent, fields: AuditFields, msg: string): void {
  log[level]({ audit: event, ...fields }, msg);
}
