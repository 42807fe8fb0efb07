import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function findVersion(): string {
  // dist/shared/version.js and shared/version.ts sit at different depths.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(rel) as { name?: string; version?: string };
      if (pkg.name === 'portolan' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

export const VERSION = findVersion();
