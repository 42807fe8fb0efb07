import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentTokensError, parseAgentTokens, readAgentTokens } from '../../aggregator/agent-tokens.js';
import { tokenDigest } from '../../aggregator/token-digest.js';
import { certificateNodeNames, namesCover, pemCertificateNames, subjectAltNames } from '../../shared/certificate-names.js';
import { TestPki } from '../support/test-pki.js';

const SECRET = 'tok-3f9a1c77e2';

test('token file: one "NODE TOKEN" per line; comments, blank lines, tabs, CRLF and a BOM are fine; a node may have several tokens', () => {
  const table = parseAgentTokens(`\uFEFF# fleet tokens\r\nhost1 ${SECRET}\r\n\n   # indented comment\nhost2\tt-2a\nhost2   t-2b  \n`);
  assert.deepEqual([...table.byDigest], [
    [tokenDigest(SECRET), 'host1'],
    [tokenDigest('t-2a'), 'host2'],
    [tokenDigest('t-2b'), 'host2'],
  ]);
  assert.equal(table.nodes, 2);
  assert.equal(parseAgentTokens('').byDigest.size, 0);
});

test('token file: a bad line is an error naming its number, never its token', () => {
  const bad: Array<[string, RegExp]> = [
    [`host1 ${SECRET}\nhost2\n`, /^line 2: expected "NODE-NAME TOKEN", got 1 field$/],
    [`# c\nhost1 ${SECRET} extra\n`, /^line 2: expected "NODE-NAME TOKEN", got 3 fields$/],
    [`host1 ${SECRET}\n\nhost2 ${SECRET}\n`, /^line 3: the token of node host2 is also on line 1 for node host1; a token covers one node$/],
    [`${'n'.repeat(254)} ${SECRET}\n`, /^line 1: node name longer than 253 characters$/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseAgentTokens(text), (err: Error) => {
      assert.ok(err instanceof AgentTokensError);
      assert.match(err.message, message);
      assert.ok(!err.message.includes(SECRET), `the message quotes the token: ${err.message}`);
      return true;
    });
  }
  // The same token twice for one node (any case) is a repeat, not a conflict.
  assert.equal(parseAgentTokens(`host1 ${SECRET}\nHOST1 ${SECRET}\n`).byDigest.size, 1);
});

test('token file on disk: group- or world-accessible modes are reported, 0600 is not; the path is in every error', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent-tokens');
  writeFileSync(path, `host1 ${SECRET}\n`);
  chmodSync(path, 0o600);
  assert.equal(readAgentTokens(path).looseMode, undefined);
  chmodSync(path, 0o644);
  assert.equal(readAgentTokens(path).looseMode, 0o644);
  chmodSync(path, 0o640);
  assert.equal(readAgentTokens(path).looseMode, 0o640);
  writeFileSync(path, `host1\n`);
  assert.throws(() => readAgentTokens(path), new RegExp(`^AgentTokensError: ${path} line 1: expected`));
  assert.throws(() => readAgentTokens(join(dir, 'missing')), (err: Error) => err instanceof AgentTokensError && err.message.startsWith(`cannot read ${join(dir, 'missing')}: ENOENT`));
});

test("subjectAltName text as Node prints it: entries split on ', ', quoted values (with commas, quotes) read as JSON strings", () => {
  assert.deepEqual(subjectAltNames('DNS:host1, DNS:host1.example, IP Address:10.0.0.1'), [
    { type: 'DNS', value: 'host1' },
    { type: 'DNS', value: 'host1.example' },
    { type: 'IP Address', value: '10.0.0.1' },
  ]);
  // A crafted name that would read as two entries unquoted is one.
  assert.deepEqual(subjectAltNames('DNS:"evil, DNS:host2", DNS:"q\\"uote"'), [
    { type: 'DNS', value: 'evil, DNS:host2' },
    { type: 'DNS', value: 'q"uote' },
  ]);
  assert.deepEqual(subjectAltNames(''), []);
  assert.deepEqual(subjectAltNames('DNS:"unterminated'), []);
});

test('certificate names: the DNS SANs when there are any (the CN is then ignored), else the CN; matched ignoring case, no wildcards', () => {
  assert.deepEqual(certificateNodeNames({ subjectaltname: 'DNS:host1, IP Address:10.0.0.1', subject: { CN: 'host2' } }), ['host1']);
  assert.deepEqual(certificateNodeNames({ subjectaltname: 'IP Address:10.0.0.1', subject: { CN: 'host2' } }), ['host2']);
  assert.deepEqual(certificateNodeNames({ subject: { CN: ['a', 'b'] } }), ['a', 'b']);
  assert.deepEqual(certificateNodeNames({ subject: null }), []);
  assert.deepEqual(certificateNodeNames({ subjectaltname: 'DNS:"evil, DNS:host2"' }), ['evil, DNS:host2']);
  assert.equal(namesCover(['Host1'], 'hOST1'), true);
  assert.equal(namesCover(['host1'], 'host2'), false);
  assert.equal(namesCover(['*.nodes.example'], 'host1.nodes.example'), false);
  assert.equal(namesCover([], 'host1'), false);
});

test("a PEM certificate's names (openssl-made): DNS SANs over the CN, the CN alone, IP SANs are no names", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-cert-names-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = new TestPki(dir);
  const names = (cert: { cert: string }) => pemCertificateNames(readFileSync(cert.cert, 'utf8'));
  assert.deepEqual(names(pki.issue('a', { cn: 'other', dns: ['host1', 'Host1.example'] })), ['host1', 'Host1.example']);
  assert.deepEqual(names(pki.issue('b', { cn: 'host2' })), ['host2']);
  assert.deepEqual(names(pki.issue('c', { cn: 'host3', ip: ['10.0.0.3'] })), ['host3']);
});
