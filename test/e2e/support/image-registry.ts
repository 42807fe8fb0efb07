import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { runOk } from '../../testbed/processes.js';

interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  optional?: boolean;
  [field: string]: unknown;
}

interface Locked {
  name: string;
  entry: LockEntry;
  /** The tarball in this machine's npm cache. */
  file: string;
}

export interface LockfileRegistry {
  port: number;
  close(): Promise<void>;
}

/**
 * An npm registry holding exactly the packages of a lockfile, served from this machine's npm
 * cache (filled by `npm ci`), so an image build on a testbed host (no internet) runs the
 * Dockerfile's real `npm ci`. The lockfile carries no `resolved` URLs, so npm asks for each
 * packument: it gets the locked versions, with tarballs here. Listens on 0.0.0.0 (the
 * testbed hosts reach the root namespace at the gateway).
 */
export async function startLockfileRegistry(lockfile: string): Promise<LockfileRegistry> {
  const packages = await lockedPackages(lockfile);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    const tarball = /^(.+)\/-\/[^/]+-(\d[^/]*)\.tgz$/.exec(path);
    const versions = packages.get(tarball ? tarball[1]! : path);
    if (!versions) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    if (tarball) {
      const hit = versions.find((p) => p.entry.version === tarball[2]);
      if (!hit) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return void createReadStream(hit.file).pipe(res);
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(packument(`http://${req.headers.host}/`, path, versions)));
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return { port: (server.address() as { port: number }).port, close: () => closeServer(server) };
}

function packument(base: string, name: string, versions: Locked[]): unknown {
  const basename = name.split('/').pop()!;
  const manifests = Object.fromEntries(
    versions.map(({ entry }) => {
      const { integrity, optional: _optional, dev: _dev, peer: _peer, license: _license, resolved: _resolved, ...fields } = entry;
      const tarball = `${base}${name}/-/${basename}-${entry.version}.tgz`;
      return [entry.version, { ...fields, name, version: entry.version, dist: { tarball, integrity } }];
    }),
  );
  return { name, 'dist-tags': { latest: versions[versions.length - 1]!.entry.version }, versions: manifests };
}

/** Every locked package by name, with its tarball's path in the npm cache (content-v2/<algo>/<hex…>). */
async function lockedPackages(lockfile: string): Promise<Map<string, Locked[]>> {
  const cache = join((await runOk('npm', ['config', 'get', 'cache'])).trim(), '_cacache');
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as { packages: Record<string, LockEntry> };
  const byName = new Map<string, Locked[]>();
  const missing: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path || !entry.integrity || !entry.version) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = join(cache, contentPath(entry.integrity));
    const cached = await access(file).then(() => true, () => false);
    // Optional packages for other platforms (e.g. @esbuild/darwin-arm64) were never fetched here; npm skips them.
    if (!cached) {
      if (!entry.optional) missing.push(path);
      continue;
    }
    const list = byName.get(name) ?? [];
    if (!list.some((l) => l.entry.version === entry.version)) list.push({ name, entry, file });
    byName.set(name, list);
  }
  if (missing.length > 0) {
    throw new Error(`the npm cache (${cache}) lacks ${missing.length} locked packages, e.g. ${missing.slice(0, 3).join(', ')}: run \`npm ci\` first`);
  }
  return byName;
}

function contentPath(integrity: string): string {
  const [algo, b64] = integrity.split(/\s+/)[0]!.split('-', 2) as [string, string];
  const hex = Buffer.from(b64, 'base64').toString('hex');
  return join('content-v2', algo, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
