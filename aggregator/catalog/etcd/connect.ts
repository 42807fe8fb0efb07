import { Etcd3, EtcdError, EtcdLeaseInvalidError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCUnavailableError, GRPCInternalError, GRPCResourceExhastedError, EtcdWatchStreamEnded, type IOptions } from 'etcd3';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { ConsecutiveBreaker, circuitBreaker, handleWhen, isBrokenCircuitError, noop } from 'cockatiel';
import { StoreUnavailableError } from '../store.js';
import type { EtcdAuth, EtcdTls } from './etcd-url.js';

export interface ClientOptions {
  endpoints: readonly string[];
  tls?: EtcdTls;
  auth?: EtcdAuth;
  /** Deadline of one unary call (default 1,500 ms): a hung member must not eat the retry window. */
  callTimeoutMs?: number;
  /** Send etcd's require-leader flag on every call (default true; see requireLeader). */
  requireLeader?: boolean;
}

/**
 * An etcd3 client tuned for the store: no hidden retries (the store retries itself, bounded in
 * time), a member that failed is skipped for 1 s, each unary call has a deadline, and
 * responses of any size (a relist of a big catalog, a revoke deleting thousands of keys).
 */
export function createEtcdClient(o: ClientOptions): Etcd3 {
  const tls = o.tls && (o.tls.ca || o.tls.cert || o.tls.key) ? o.tls : undefined;
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) throw new Error('etcd TLS: a client certificate needs its key, and a key its certificate');
  const secure = tls !== undefined || o.endpoints.some((e) => e.startsWith('https://'));
  const hosts = o.endpoints.map((e) => (secure ? e.replace(/^http:\/\//, 'https://') : e));
  const callTimeoutMs = o.callTimeoutMs ?? 1500;
  const options: IOptions = {
    hosts,
    ...(tls
      ? {
          credentials: {
            rootCertificate: tls.ca ? Buffer.from(tls.ca) : (undefined as unknown as Buffer),
            ...(tls.key ? { privateKey: Buffer.from(tls.key) } : {}),
            ...(tls.cert ? { certChain: Buffer.from(tls.cert) } : {}),
          },
        }
      : {}),
    ...(o.auth ? { auth: { username: o.auth.username, password: o.auth.password, callOptions: () => ({ deadline: Date.now() + callTimeoutMs }) } } : {}),
    grpcOptions: {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      // etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 2000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
    defaultCallOptions: (ctx) => ({ ...(ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }), interceptors: o.requireLeader === false ? [] : [requireLeader] }),
    faultHandling: {
      // Only a member that cannot be reached is skipped; "leader changed" comes from one that can.
      host: () => circuitBreaker(handleWhen(isHostFailure), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(1) }),
      global: noop,
    },
  };
  return new Etcd3(options);
}

/**
 * etcd's "require leader" (clientv3.WithRequireLeader: metadata `hasleader: true`): a member
 * without a leader refuses a call at once ("etcdserver: no leader", retried) instead of holding
 * it until it times out, and cancels streams when it loses its leader (they reopen elsewhere).
 */
const requireLeader: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('hasleader', 'true');
      next(metadata, listener);
    },
  });

/** Leader elections, a member down or hung, a closed stream: worth another try (elsewhere). */
export function isTransient(err: unknown): boolean {
  if (isBrokenCircuitError(err)) return true;
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || err instanceof GRPCCancelledError) return true;
  if (err instanceof GRPCResourceExhastedError || err instanceof EtcdWatchStreamEnded) return true;
  if (err instanceof EtcdLeaseInvalidError) return false;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof EtcdError || err instanceof GRPCInternalError || /etcdserver:/.test(message)) {
    return /leader changed|no leader|request timed out|timed out|too many requests|not capable|stopped|unhealthy|not started|connection|transport/i.test(message);
  }
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|No connection established|Deadline exceeded|UNAVAILABLE/i.test(message);
}

/** The member itself did not answer (down, hung, unreachable): try another. */
export function isHostFailure(err: unknown): boolean {
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) return true;
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|No connection established|Connection dropped/i.test(err instanceof Error ? err.message : String(err));
}

/** An etcd member answered but there is no leader right now (an election): the cluster is there. */
export function isElection(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /leader changed|no leader/i.test(message);
}

export interface RetryOptions {
  /** Give up after this long (default 3 s) with StoreUnavailableError. */
  budgetMs?: number;
  signal?: AbortSignal;
  /** Deadline of one attempt (default 1,500 ms), cut to what is left of the budget. */
  callTimeoutMs?: number;
  /** Called on each transient failure (counted, logged at debug). */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Runs `fn` until it succeeds, retrying transient failures with backoff (50 ms doubling to
 * 400 ms) for up to `budgetMs`; then rejects with StoreUnavailableError. Other errors reject at
 * once as they are. `fn` gets the deadline its call must use (so the last attempt does not
 * outlast the budget).
 */
export async function withRetry<T>(what: string, fn: (call: { deadline: number }) => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const end = Date.now() + (o.budgetMs ?? 3000);
  let delay = 50;
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw new StoreUnavailableError(`${what}: the store is closing`);
    try {
      // Each attempt ends by the budget's end at the latest (at least 200 ms to get an answer).
      return await fn({ deadline: Math.max(Date.now() + 200, Math.min(Date.now() + (o.callTimeoutMs ?? 1500), end)) });
    } catch (err) {
      if (!isTransient(err)) throw err;
      o.onRetry?.(err, attempt);
      const left = end - Date.now();
      if (left <= 0) throw new StoreUnavailableError(`${what}: etcd unavailable for ${o.budgetMs ?? 3000} ms (${errorText(err)})`);
      await sleep(Math.min(delay, left), o.signal);
      delay = Math.min(delay * 2, 400);
    }
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
