import { run } from './processes.js';

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Default 10 s. */
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A network namespace belongs to a process, not to a socket, so the request is made by a short
 * node process entered into the namespace with nsenter. It gets the request as JSON in argv and
 * prints the response as JSON. Plain JavaScript: no TypeScript loader needed in that process.
 */
const PROBE = `
const { url, method, headers, body, timeoutMs } = JSON.parse(process.argv[1]);
fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) })
  .then(async (res) => {
    const out = JSON.stringify({ status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() });
    process.stdout.write(out, () => process.exit(0));
  })
  // Exits at once: an aborted connect would otherwise keep the process alive until its own timeout.
  .catch((error) => process.stderr.write(String(error.cause ?? error), () => process.exit(1)));
`;

/** Makes an HTTP request from inside the namespace; rejects when no response arrives (refused, timeout, unreachable). */
export async function httpInNamespace(nsPath: string, url: string, request: HttpRequest): Promise<HttpResult> {
  const timeoutMs = request.timeoutMs ?? 10_000;
  const spec = JSON.stringify({ url, method: request.method, headers: request.headers, body: request.body, timeoutMs });
  const result = await run('nsenter', [`--net=${nsPath}`, '--', process.execPath, '-e', PROBE, spec], {
    timeoutMs: timeoutMs + 5_000,
  });
  if (result.code !== 0) throw new Error(`HTTP ${request.method ?? 'GET'} ${url} from ${nsPath} failed: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as HttpResult;
}
