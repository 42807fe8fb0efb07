import http from 'node:http';
import https from 'node:https';

/**
 * The HTTP side of the CLI's client commands (`maint`, `services`, `members`, `catalog …`): one
 * request at a time to a Consul-style API, an answer's error status or an unreachable server
 * turned into exit status 1 with its reason.
 */

/** Where a client command's output goes; the commands never write anywhere else. */
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The API answered with an error status, or could not be reached: exit 1 with its text. */
export class ApiError extends Error {}

export interface ApiClientOptions {
  /** Sent as X-Consul-Token, as Consul's CLI sends its -token. */
  token?: string | undefined;
  /** PEM CA certificates an https:// server must chain to (else the system's). */
  ca?: string | undefined;
  /** Said after "cannot reach …" (what to check). */
  unreachableHint?: string | undefined;
}

export class ApiClient {
  readonly #base: URL;
  readonly #options: ApiClientOptions;

  constructor(base: URL, options: ApiClientOptions = {}) {
    this.#base = base;
    this.#options = options;
  }

  async call(method: string, path: string): Promise<string> {
    const url = new URL(path, this.#base);
    let answer: { status: number; text: string };
    try {
      answer = await request(method, url, this.#options);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const hint = this.#options.unreachableHint ? `: ${this.#options.unreachableHint}` : '';
      throw new ApiError(`cannot reach ${this.#base.origin} (${e.code ?? e.message})${hint}`);
    }
    if (answer.status >= 300) throw new ApiError(`${url.origin}${url.pathname}: ${answer.status} ${answer.text.trim()}`);
    return answer.text;
  }

  async json<T>(path: string): Promise<T> {
    return JSON.parse(await this.call('GET', path)) as T;
  }
}

/** node:http rather than fetch, which refuses some ports outright (WHATWG "bad ports": 1, 6000, …). */
function request(method: string, url: URL, options: ApiClientOptions): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = options.token ? { 'X-Consul-Token': options.token } : {};
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, timeout: 10_000, ...(options.ca ? { ca: options.ca } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 10 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

/** Runs a client command's body: 0 when it completes, 1 (its reason on stderr) on an ApiError. */
export async function runClient(io: Output, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    io.err(`${err.message}\n`);
    return 1;
  }
}

/**
 * Columns as Consul's CLI lays them out (ryanuber/columnize): each cell but the last padded to
 * its column's widest, two spaces between.
 */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n').join('');
}
