import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseUpstream, parseResolvConf, readSystemUpstream } from '../../agent/local-dns/resolv-conf.js';

// As systemd-resolved writes /etc/resolv.conf in stub mode.
const systemdStub = `# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
# Do not edit.
nameserver 127.0.0.53
options edns0 trust-ad
search lan
`;

const none = () => false;

test('nameservers in file order: IPv4, IPv6, IPv6 with its zone kept', () => {
  const text = 'nameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver fe80::1%eth0\nnameserver 198.51.100.7\n';
  assert.deepEqual(parseResolvConf(text), ['192.0.2.1', '2001:db8::53', 'fe80::1%eth0', '198.51.100.7']);
});

test('comments, options, search, domain and sortlist lines yield no nameserver', () => {
  assert.deepEqual(parseResolvConf(systemdStub), ['127.0.0.53']);
  const text = '# nameserver 192.0.2.1\n; nameserver 192.0.2.2\ndomain example.org\nsortlist 10.0.0.0/8\noptions ndots:2 timeout:1\nsearch a b\n';
  assert.deepEqual(parseResolvConf(text), []);
});

test('as glibc: keyword at the start of the line then a blank; the value ends at a blank, so a trailing comment is ignored', () => {
  const text = ['nameserver\t192.0.2.1   # office', 'nameserver 192.0.2.2 ; second', '  nameserver 192.0.2.3', 'nameserver192.0.2.4', 'NAMESERVER 192.0.2.5', 'nameserver 192.0.2.6\r'].join('\n');
  assert.deepEqual(parseResolvConf(text), ['192.0.2.1', '192.0.2.2', '192.0.2.6']);
});

test('values that are not an IPv4 or IPv6 address are skipped', () => {
  const bad = ['dns.example.org', '192.0.2', '192.0.2.256', '192.0.2.1#53', '192.0.2.1%eth0', 'fe80::1%eth0%1', '2001:db8::g', ''];
  const text = [...bad.map((b) => `nameserver ${b}`), 'nameserver', 'nameserver 192.0.2.9'].join('\n');
  assert.deepEqual(parseResolvConf(text), ['192.0.2.9']);
});

test('upstream is HOST:PORT on port 53, brackets around IPv6 (zone inside them)', () => {
  assert.equal(chooseUpstream(['1.2.3.4'], none), '1.2.3.4:53');
  assert.equal(chooseUpstream(['fd00::1'], none), '[fd00::1]:53');
  assert.equal(chooseUpstream(['fe80::1%eth0'], none), '[fe80::1%eth0]:53');
  assert.equal(chooseUpstream([], none), undefined);
});

test('the first nameserver that is not ours; own gets the address without its zone', () => {
  const asked: string[] = [];
  const ours = new Set(['172.17.0.1', 'fe80::1']);
  const own = (a: string) => (asked.push(a), ours.has(a));
  assert.equal(chooseUpstream(['172.17.0.1', 'fe80::1%docker0', '10.0.0.2', '10.0.0.3'], own), '10.0.0.2:53');
  assert.deepEqual(asked, ['172.17.0.1', 'fe80::1', '10.0.0.2']);
  assert.equal(chooseUpstream(['172.17.0.1'], own), undefined);
});

test('a loopback stub such as 127.0.0.53 is an upstream unless own says it is ours', () => {
  const ns = parseResolvConf(systemdStub);
  assert.equal(chooseUpstream(ns, (a) => a === '172.17.0.1'), '127.0.0.53:53');
  assert.equal(chooseUpstream(ns, (a) => a === '127.0.0.53'), undefined);
});

test('readSystemUpstream reads and chooses; a missing file is undefined, another read error is thrown', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'resolv-conf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'resolv.conf');
  await writeFile(path, 'nameserver 172.17.0.1\nnameserver 2001:db8::53\n');
  assert.equal(await readSystemUpstream((a) => a === '172.17.0.1', path), '[2001:db8::53]:53');
  await writeFile(path, '# empty\n');
  assert.equal(await readSystemUpstream(none, path), undefined);
  assert.equal(await readSystemUpstream(none, join(dir, 'missing')), undefined);
  await assert.rejects(readSystemUpstream(none, dir), /EISDIR/);
});
