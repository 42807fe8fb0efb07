import type { DockerOptions } from 'dockerode';

export interface DockerEndpoint {
  /** Passed to `new Docker()`; empty means "from DOCKER_HOST" (docker-modem reads it). */
  options: DockerOptions;
  /** Said in logs, e.g. while waiting for the engine. */
  description: string;
}

const defaultSocket = '/var/run/docker.sock';

/**
 * `--docker` value (`unix:///path`, `tcp://host:port`, or a bare socket path) to
 * dockerode options. Without one, DOCKER_HOST applies (tcp TLS settings such as
 * DOCKER_CERT_PATH included, which docker-modem handles), else the default socket.
 */
export function dockerEndpoint(spec: string | undefined, env: NodeJS.ProcessEnv): DockerEndpoint {
  if (spec === undefined || spec === '') {
    if (env.DOCKER_HOST) return { options: {}, description: `${env.DOCKER_HOST} (DOCKER_HOST)` };
    return unixSocket(defaultSocket);
  }
  if (spec.startsWith('unix://')) return unixSocket(spec.slice('unix://'.length) || defaultSocket);
  if (spec.startsWith('/')) return unixSocket(spec);
  const url = parseTcp(spec);
  return {
    options: { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || '2375', protocol: url.protocol === 'https:' ? 'https' : 'http' },
    description: spec,
  };
}

/** An explicit socket must win over a tcp DOCKER_HOST that docker-modem merges in underneath. */
function unixSocket(socketPath: string): DockerEndpoint {
  return { options: { socketPath, host: undefined, protocol: 'http' }, description: `unix://${socketPath}` };
}

function parseTcp(spec: string): URL {
  const withScheme = spec.includes('://') ? spec : `tcp://${spec}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`invalid Docker endpoint "${spec}": expected unix:///path/to/docker.sock or tcp://host:port`);
  }
  if (!['tcp:', 'http:', 'https:'].includes(url.protocol) || !url.hostname) {
    throw new Error(`invalid Docker endpoint "${spec}": expected unix:///path/to/docker.sock or tcp://host:port`);
  }
  return url;
}
