import { createRequire, Module } from 'node:module';
import type Docker from 'dockerode';

const require = createRequire(import.meta.url);

/**
 * dockerode's constructor, loaded without the two parts the agent never uses. dockerode
 * requires, as it loads, docker-modem's SSH transport (ssh2, whose WebAssembly poly1305 alone
 * holds 16 MB) and its BuildKit session support (@grpc/grpc-js, protobufjs): about 20 MB of
 * RSS for ssh:// engines and image builds, against an agent budget of 60 MB. Each of the two
 * modules gets a stand-in in require.cache (Node documents adding entries there) that loads
 * the real module the first time it is used, so an ssh:// DOCKER_HOST still works. The built
 * CLI bundles dockerode but leaves these two files to Node's require (cli/bundle.mjs), so the
 * stand-ins serve the bundle too.
 */
export async function loadDockerode(): Promise<typeof Docker> {
  const dockerode = require.resolve('dockerode');
  deferUntilUsed(dockerode, './session');
  deferUntilUsed(createRequire(dockerode).resolve('docker-modem'), './ssh');
  // Imported only now, after the stand-ins are in place.
  const { default: Docker } = await import('dockerode');
  return Docker;
}

/** Puts a stand-in for module `request` (as required from file `from`) into require.cache. */
function deferUntilUsed(from: string, request: string): void {
  const requireThere = createRequire(from);
  let file: string;
  try {
    file = requireThere.resolve(request);
  } catch {
    return; // laid out differently in another release of dockerode: it loads as it always did
  }
  if (require.cache[file]) return;
  let real: object | undefined;
  const load = (): object => {
    if (real === undefined) {
      delete require.cache[file];
      real = requireThere(file) as object;
    }
    return real;
  };
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  // Whatever the module exports (these two export a function), the first call or property read loads it.
  standIn.exports = new Proxy(() => {}, {
    apply: (_target, self, args) => Reflect.apply(load() as (...a: unknown[]) => unknown, self, args),
    get: (_target, key) => Reflect.get(load(), key),
  });
  require.cache[file] = standIn;
}
