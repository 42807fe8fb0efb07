// Part of `npm run build` (after tsc): bundles the CLI and the agent role, with their
// dependencies, into dist/cli/. An agent runs on every Docker host, and Node holds several MB
// less for one bundled ESM graph than for the same code as separate modules and CommonJS packages.
// The aggregator stays tsc's output (dist/aggregator/, loaded by the bundle through its relative
// import): it finds its UI assets and native addon relative to its own modules' files.
import { build } from 'esbuild';

/**
 * dockerode is bundled, except for the two modules agent/docker-client.ts defers (SSH and
 * BuildKit support, ~20 MB): they stay files that the bundled dockerode requires from
 * node_modules with Node's require, which finds docker-client's stand-ins in require.cache.
 */
const DEFERRED_DOCKER_PARTS = [
  { importer: /[\\/]node_modules[\\/]dockerode[\\/]lib[\\/]docker\.js$/, request: './session', path: 'dockerode/lib/session.js' },
  { importer: /[\\/]node_modules[\\/]docker-modem[\\/]lib[\\/]modem\.js$/, request: './ssh', path: 'docker-modem/lib/ssh.js' },
];
const leftToRequire = new Set();

const deferredDockerParts = {
  name: 'deferred-docker-parts',
  setup(build) {
    build.onResolve({ filter: /^\.\/(session|ssh)$/ }, (args) => {
      const part = DEFERRED_DOCKER_PARTS.find((p) => p.request === args.path && p.importer.test(args.importer));
      if (!part) return undefined;
      leftToRequire.add(part.path);
      return { path: part.path, external: true };
    });
  },
};

await build({
  entryPoints: ['cli/portolan.ts'],
  outbase: '.',
  outdir: 'dist',
  // Each role a chunk of its own, loaded by its dynamic import: an agent does not load the
  // aggregator's code or dependencies, nor an aggregator the agent's. Chunks sit next to the
  // entry, at the depth of tsc's files, for the relative paths in their code (package.json).
  splitting: true,
  chunkNames: 'cli/[name]-[hash]',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  sourcemap: true,
  // Loaded only when asked for (--metrics, readable logs).
  external: ['../aggregator/*', 'prom-client', 'pino-pretty'],
  plugins: [deferredDockerParts],
  // The bundled CommonJS packages (ws, pino, dockerode) require Node's built-in modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});

// Another dockerode release may lay itself out differently; the bundle would then carry ssh2 and gRPC.
if (leftToRequire.size !== DEFERRED_DOCKER_PARTS.length) {
  throw new Error(`cli/bundle.mjs: dockerode's SSH and BuildKit modules not found where expected (found: ${[...leftToRequire].join(', ') || 'none'})`);
}
