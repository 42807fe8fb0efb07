/**
 * The page's calls to the aggregator's API, with the API token (--api-token) it was given.
 * The token is asked for when the aggregator answers 403 and kept in sessionStorage: it lasts
 * as long as the tab and never reaches other tabs or the disk for good.
 */

const TOKEN_KEY = 'portolan.apiToken';

export const storedToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const saveToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

function tokenHeaders() {
  const token = storedToken();
  return token ? { 'X-Consul-Token': token } : {};
}

/** EventSource cannot send headers, so the stream carries the token as ?token=. */
export function eventsUrl() {
  const token = storedToken();
  return token ? `/v1/portolan/events?token=${encodeURIComponent(token)}` : '/v1/portolan/events';
}

/** An answer other than 2xx; its message is the aggregator's own text (its errors are text/plain). */
export class ApiError extends Error {
  constructor(status, text) {
    super(text ? `${text} (HTTP ${status})` : `HTTP ${status}`);
    this.status = status;
  }
}

async function call(method, path) {
  let res;
  try {
    res = await fetch(path, { method, headers: tokenHeaders(), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'the aggregator cannot be reached');
  }
  if (!res.ok) throw new ApiError(res.status, (await res.text().catch(() => '')).trim());
  return res;
}

export const getJson = async (path) => (await call('GET', path)).json();
export const putJson = async (path) => (await call('PUT', path)).json();

/**
 * `load` run one call at a time: a call while one runs makes it run once more after it
 * (`againMs` later), however many came meanwhile, so a burst of changes costs two fetches.
 */
export function oneAtATime(load, againMs = 0) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) return void (again = true);
    running = true;
    try {
      await load();
    } finally {
      running = false;
      if (again) {
        again = false;
        setTimeout(() => void run(), againMs);
      }
    }
  };
  return run;
}

/** true when the API refuses this page's token (or the lack of one): an EventSource error does not say. */
export async function refused() {
  try {
    await call('GET', '/v1/agent/self');
    return false;
  } catch (err) {
    return err.status === 403;
  }
}
