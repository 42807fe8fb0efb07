import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import type { App } from '../http/endpoint.js';

/**
 * `GET /ui`: the aggregator's web page, plain static files read once at startup. The page's
 * own paths (a service, a host) serve the same index.html, so a deep link or a reload opens
 * that view; the page routes on the client and references its assets by absolute path. The assets
 * sit next to this module: in aggregator/ui/assets/ when run from the sources (tsx) and in
 * dist/aggregator/ui/assets/, where `npm run build` copies them, when run from the build.
 */

const ASSET_DIR = fileURLToPath(new URL('./assets/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The page loads nothing but its own files and the change stream; data can never run as code. */
const HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // Small files, so revalidating costs little and an upgraded aggregator is picked up at once.
  'Cache-Control': 'no-cache',
};

/** The views of the page (app.js routes them); an asset of the same name cannot exist under these. */
const PAGE_ROUTES = ['/ui', '/ui/service/:name', '/ui/host/:node'];

interface Asset {
  type: string;
  body: Buffer;
}

export function registerUi<L extends FastifyBaseLogger>(app: App<L>, assetDir = ASSET_DIR): void {
  const assets = loadAssets(assetDir);
  const index = assets.get('index.html');
  if (!index) throw new Error(`web UI: no index.html in ${assetDir}`);
  for (const path of PAGE_ROUTES) app.get(path, (_request, reply) => reply.headers(HEADERS).type(index.type).send(index.body));
  for (const [name, asset] of assets) {
    if (name === 'index.html') continue;
    app.get(`/ui/${name}`, (_request, reply) => reply.headers(HEADERS).type(asset.type).send(asset.body));
  }
}

function loadAssets(dir: string): Map<string, Asset> {
  if (!existsSync(dir)) throw new Error(`web UI assets not found at ${dir} (run \`npm run build\`, which copies them next to the compiled code)`);
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir).sort()) {
    const type = CONTENT_TYPES[extname(name)];
    if (type) assets.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  return assets;
}
