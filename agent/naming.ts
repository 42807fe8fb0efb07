/**
 * How portolan names a service (README text):
 *
 *   1. `SERVICE_<port>_NAME`, else `SERVICE_NAME` (label over env).
 *   2. Otherwise the compose service (label `com.docker.compose.service`).
 *   3. Otherwise the image's base name: registry, path, tag and digest are dropped
 *      (`registry:5000/org/app:1.2@sha256:…` → `app`). A container run from a bare
 *      image ID (`sha256:…` or a hex prefix) has no image name, so its container
 *      name is used instead.
 *   4. A container with more than one registered port gets `-<container port>`
 *      appended (`web-80`, `web-443`), unless the name came from `SERVICE_<port>_NAME`.
 *   5. The result is made a DNS label: lower-cased; every character other than
 *      a-z, 0-9 and `-` (`_`, `.`, `@`, `/`, `:`, spaces, …) becomes `-`; runs of `-`
 *      collapse; leading and trailing `-` go; at most 63 characters. `my_api` → `my-api`.
 *      A name that is left empty falls back to the next rule (finally `service`).
 *
 * Tags are passed through unchanged (trimmed, empty ones dropped): tools such as
 * Traefik and Fabio read tags like `traefik.enable=true` or `urlprefix-/api`, which
 * must survive; such tags are simply not usable as DNS tag filters.
 */

const maxLabel = 63;
const composeServiceLabel = 'com.docker.compose.service';

/** Makes `raw` a valid DNS label (RFC 1123 hostname label); may return ''. */
export function dnsLabel(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-/, '')
    .slice(0, maxLabel)
    .replace(/-$/, '');
}

export interface NamingInput {
  /** Config.Image: the reference the container was created from. */
  image: string;
  /** Image: the resolved `sha256:<hex>` image ID. */
  imageId: string;
  labels: Readonly<Record<string, string>>;
  /** Container name without the leading `/`. */
  containerName: string;
}

/** The name used when no SERVICE_NAME applies; always a non-empty DNS label. */
export function defaultName(c: NamingInput): string {
  const candidates = [c.labels[composeServiceLabel], imageBaseName(c.image, c.imageId), c.containerName];
  for (const candidate of candidates) {
    const label = candidate === undefined ? '' : dnsLabel(candidate);
    if (label) return label;
  }
  return 'service';
}

/** `registry:5000/org/app:1.2@sha256:…` → `app`; undefined for an image ID. */
export function imageBaseName(image: string, imageId: string): string | undefined {
  if (isImageId(image, imageId)) return undefined;
  const withoutDigest = image.split('@')[0] ?? '';
  const lastPath = withoutDigest.slice(withoutDigest.lastIndexOf('/') + 1);
  const base = lastPath.split(':')[0];
  return base || undefined;
}

function isImageId(image: string, imageId: string): boolean {
  if (image.startsWith('sha256:')) return true;
  const hex = imageId.replace(/^sha256:/, '');
  return /^[0-9a-f]{12,64}$/.test(image) && hex.startsWith(image);
}

/** Name for one port: explicit or default, plus the multi-port suffix; a DNS label. */
export function serviceName(explicit: string | undefined, fallback: string, suffixPort: number | undefined): string {
  const base = (explicit !== undefined && dnsLabel(explicit)) || fallback;
  if (suffixPort === undefined) return base;
  const suffix = `-${suffixPort}`;
  return `${base.slice(0, maxLabel - suffix.length).replace(/-$/, '')}${suffix}`;
}
