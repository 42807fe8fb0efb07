import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from './processes.js';

/** The image every host's engine holds: busybox-static with all its applets, and a page in /www. */
export const TEST_IMAGE = 'portolan-test:latest';
export const TEST_PAGE = 'portolan test page\n';

/**
 * Writes a rootfs tarball for `docker import` (no registry is reachable, so nothing is pulled):
 * /bin/busybox plus a symlink per applet (sh, httpd, nc, sleep, wget, …) and /www/index.html.
 */
export async function buildImageTarball(busyboxPath: string, workDir: string): Promise<string> {
  const rootfs = join(workDir, 'rootfs');
  await rm(rootfs, { recursive: true, force: true });
  for (const dir of ['bin', 'etc', 'www', 'tmp', 'proc', 'sys', 'dev']) await mkdir(join(rootfs, dir), { recursive: true });
  await copyFile(busyboxPath, join(rootfs, 'bin', 'busybox'));
  const applets = (await runOk(busyboxPath, ['--list'])).split('\n').filter((name) => name && name !== 'busybox');
  await Promise.all(applets.map((name) => symlink('busybox', join(rootfs, 'bin', name))));
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(rootfs, 'www', 'index.html'), TEST_PAGE);
  const tarball = join(workDir, 'portolan-test.tar');
  await runOk('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarball, '.']);
  await rm(rootfs, { recursive: true });
  return tarball;
}

export async function importImage(docker: (args: string[]) => Promise<string>, tarball: string): Promise<void> {
  await docker(['import', '--change', 'CMD ["sh"]', tarball, TEST_IMAGE]);
}
