import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { CheckStatus } from '../../shared/model.js';
import { describe, probeUrl, type ProbeDefinition } from './definitions.js';

export interface ProbeResult {
  status: CheckStatus;
  /** Short and stable for a given outcome (no bodies, no timings), so unchanged results send nothing. */
  output: string;
}

/** Runs one probe; never rejects, never takes longer than the probe's timeout. */
export function runProbe(p: ProbeDefinition): Promise<ProbeResult> {
  return p.id === 'tcp' ? tcpProbe(p) : httpProbe(p);
}

/** Go's http.Client, which Consul uses, follows up to 10 redirects. */
const maxRedirects = 10;

/** Consul's HTTP check: 2xx passing, 429 Too Many Requests warning, anything else critical. */
export function httpStatus(code: number): CheckStatus {
  if (code >= 200 && code < 300) return 'passing';
  return code === 429 ? 'warning' : 'critical';
}

async function httpProbe(p: ProbeDefinition): Promise<ProbeResult> {
  const signal = AbortSignal.timeout(p.timeoutMs);
  const prefix = describe(p);
  let url = new URL(probeUrl(p));
  try {
    for (let hops = 0; ; hops++) {
      const res = await request(url, p, signal);
      if (res.location === undefined || hops === maxRedirects) {
        return { status: httpStatus(res.code), output: `${prefix}: ${res.code} ${http.STATUS_CODES[res.code] ?? ''}`.trimEnd() };
      }
      url = new URL(res.location, url);
    }
  } catch (err) {
    return { status: 'critical', output: `${prefix}: ${signal.aborted ? `timed out after ${seconds(p.timeoutMs)}` : errorText(err)}` };
  }
}

/** One request; the body is discarded unread. `location` is set for a redirect to follow. */
function request(url: URL, p: ProbeDefinition, signal: AbortSignal): Promise<{ code: number; location?: string }> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: p.method,
        signal,
        // No pooled sockets: a kept-alive connection to a restarted container would fail the next probe.
        agent: false,
        headers: { 'user-agent': 'portolan health check', accept: 'text/plain, text/*, */*', connection: 'close' },
        rejectUnauthorized: !p.tlsSkipVerify,
      },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        const location = code >= 300 && code < 400 ? res.headers.location : undefined;
        resolve({ code, ...(location ? { location } : {}) });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function tcpProbe(p: ProbeDefinition): Promise<ProbeResult> {
  const prefix = describe(p);
  return new Promise((resolve) => {
    const socket = net.connect({ host: p.target.address, port: p.target.port });
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ status: 'critical', output: `${prefix}: timed out after ${seconds(p.timeoutMs)}` }), p.timeoutMs);
    socket.once('connect', () => done({ status: 'passing', output: `${prefix}: Success` }));
    socket.once('error', (err) => done({ status: 'critical', output: `${prefix}: ${errorText(err)}` }));
  });
}

/** Error codes (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT) are stable; messages may carry addresses or timings. */
function errorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? e.code : String(e.message ?? err);
}

function seconds(ms: number): string {
  return `${ms / 1000}s`;
}
