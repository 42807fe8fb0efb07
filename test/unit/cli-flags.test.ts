import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration, parseFlags, parseHostPort, UsageError, type FlagSpec } from '../../cli/flags.js';
import { agentFlags, agentOptions } from '../../cli/agent-command.js';
import { aggregatorFlags, aggregatorOptions } from '../../cli/aggregator-command.js';

const specs: FlagSpec[] = [
  { name: 'ip', kind: 'string', env: 'T_IP', help: '', aliases: ['ip'] },
  { name: 'internal', kind: 'boolean', env: 'T_INTERNAL', default: 'false', help: '', aliases: ['internal'] },
  { name: 'tags', kind: 'list', env: 'T_TAGS', help: '' },
  { name: 'wait', kind: 'duration', env: 'T_WAIT', default: '1s', help: '' },
  { name: 'mode', kind: 'string', env: 'T_MODE', default: 'a', choices: ['a', 'b'], help: '' },
];

test('flags beat env, env beats defaults; registrator single-dash aliases work', () => {
  const { values } = parseFlags(specs, ['-ip', '10.0.0.9', '-internal', '--tags=a, b,,c'], { T_IP: '1.1.1.1', T_WAIT: '1m30s' });
  assert.deepEqual(values, { ip: '10.0.0.9', internal: true, tags: ['a', 'b', 'c'], wait: 90_000, mode: 'a' });
  assert.equal(parseFlags(specs, [], { T_IP: '1.1.1.1', T_INTERNAL: 'true' }).values.ip, '1.1.1.1');
  assert.equal(parseFlags(specs, ['--internal=false'], { T_INTERNAL: 'true' }).values.internal, false);
});

test('bad flags are usage errors that name the flag', () => {
  assert.throws(() => parseFlags(specs, ['--nope'], {}), (e) => e instanceof UsageError && /unknown flag "--nope"/.test(e.message));
  assert.throws(() => parseFlags(specs, ['--ip'], {}), /--ip needs a value/);
  assert.throws(() => parseFlags(specs, ['--mode', 'c'], {}), /--mode must be one of a, b/);
  assert.throws(() => parseFlags(specs, ['--wait', '5 minutes'], {}), /--wait must be a duration/);
  assert.throws(() => parseFlags(specs, ['stray'], {}), /unexpected argument "stray"/);
  assert.equal(parseFlags(specs, ['--help'], {}).help, true);
});

test('durations and host:port', () => {
  assert.equal(parseDuration({ name: 'x' }, '500ms'), 500);
  assert.equal(parseDuration({ name: 'x' }, '2'), 2000);
  assert.equal(parseDuration({ name: 'x' }, '1h2m3s'), 3_723_000);
  assert.deepEqual(parseHostPort('dns', '127.0.0.1:53'), { host: '127.0.0.1', port: 53 });
  assert.deepEqual(parseHostPort('dns', '[::1]:8600'), { host: '::1', port: 8600 });
  assert.deepEqual(parseHostPort('dns', '8600'), { host: '0.0.0.0', port: 8600 });
  assert.throws(() => parseHostPort('dns', 'localhost'), /--dns must be HOST:PORT/);
});

test('host:port takes IPv6 in brackets only: [::], a ULA, a scoped link-local; bare or bad bracketed hosts are usage errors', () => {
  assert.deepEqual(parseHostPort('http', '[::]:8500'), { host: '::', port: 8500 });
  assert.deepEqual(parseHostPort('http', '[fd00:213::1]:8500'), { host: 'fd00:213::1', port: 8500 });
  assert.deepEqual(parseHostPort('dns', '[fe80::1%eth0]:53'), { host: 'fe80::1%eth0', port: 53 });
  assert.throws(() => parseHostPort('http', ':::8500'), /--http must be HOST:PORT \(an IPv6 address in brackets: \[::\]:8500\)/);
  assert.throws(() => parseHostPort('http', 'fd00::1:8500'), /--http must be HOST:PORT/);
  assert.throws(() => parseHostPort('http', '[10.0.0.1]:8500'), /--http: "10.0.0.1" in brackets is not an IPv6 address/);
  assert.throws(() => parseHostPort('http', '[example.com]:8500'), /in brackets is not an IPv6 address/);
});

test('IPv6 listen and connect addresses: aggregator --http/--dns/--recursor, agent --aggregator/--local-api/--metrics/--ip6', () => {
  const aggregator = aggregatorOptions(parseFlags(aggregatorFlags, ['--http', '[::]:8500', '--recursor', '[2001:db8::53]:53'], { PORTOLAN_DNS: '[::]:8600' }).values);
  assert.deepEqual([aggregator.http, aggregator.dns, aggregator.recursor], [{ host: '::', port: 8500 }, { host: '::', port: 8600 }, '[2001:db8::53]:53']);
  assert.throws(() => aggregatorOptions(parseFlags(aggregatorFlags, ['--recursor', '2001:db8::53'], {}).values), /--recursor must be HOST:PORT/);
  const agent = (args: string[], env: Record<string, string> = {}) => agentOptions(parseFlags(agentFlags, ['--aggregator', 'ws://[fd00:213::1]:8500', ...args], env).values);
  const o = agent(['--local-api', '[::1]:8500', '--metrics', '[::]:9100', '--ip6', '[FD00:213:0::2]']);
  assert.equal(o.aggregator, 'ws://[fd00:213::1]:8500');
  assert.deepEqual([o.localApi, o.metrics, o.ip6], [{ host: '::1', port: 8500 }, { host: '::', port: 9100 }, 'fd00:213::2']);
  assert.equal(agent([], { PORTOLAN_IP6: '2001:db8::7' }).ip6, '2001:db8::7');
  assert.equal(agent([]).ip6, undefined);
  for (const bad of ['10.0.0.2', 'host.example', 'fe80::1%eth0', 'fd00::/64']) {
    assert.throws(() => agent(['--ip6', bad]), (e) => e instanceof UsageError && /--ip6 must be an IPv6 address/.test(e.message), bad);
  }
});

test('aggregator defaults match the documented ones', () => {
  const o = aggregatorOptions(parseFlags(aggregatorFlags, [], {}).values);
  assert.deepEqual(o.http, { host: '0.0.0.0', port: 8500 });
  assert.deepEqual(o.dns, { host: '0.0.0.0', port: 8600 });
  assert.equal(o.domain, 'consul');
  assert.equal(o.datacenter, 'dc1');
  assert.equal(o.heartbeatMs, 1000);
  assert.equal(o.suspectAfterMs, 3000);
  assert.equal(o.reapAfterMs, 60_000);
  assert.equal(o.udpMaxSize, 1232);
  assert.equal(o.httpMaxConns, 16_384);
  assert.equal(o.maxEventStreams, 100);
  assert.equal(o.httpMaxConnsPerClient, 200);
  assert.equal(o.apiTokens, undefined);
  assert.equal(o.metricsToken, undefined);
  assert.equal(o.tls, undefined);
  assert.throws(() => aggregatorOptions(parseFlags(aggregatorFlags, ['--tls-cert', '/nonexistent.pem'], {}).values), /--tls-cert and --tls-key go together/);
});

test('agent options from env, with registrator spellings', () => {
  const env = { PORTOLAN_AGGREGATOR: 'ws://10.0.0.1:8500', PORTOLAN_TAGS: 'x,y' };
  const o = agentOptions(parseFlags(agentFlags, ['-deregister', 'on-success', '-resync', '30', '-useIpFromLabel', 'ip'], env).values);
  assert.equal(o.aggregator, 'ws://10.0.0.1:8500');
  assert.deepEqual(o.tags, ['x', 'y']);
  assert.equal(o.deregister, 'on-success');
  assert.equal(o.resyncSeconds, 30);
  assert.equal(o.useIpFromLabel, 'ip');
  assert.equal(o.deregisterOn, 'stop');
  assert.throws(() => agentOptions(parseFlags(agentFlags, [], {}).values), /--aggregator \(or PORTOLAN_AGGREGATOR\) is required/);
  assert.throws(() => agentOptions(parseFlags(agentFlags, ['--aggregator', 'http://x:8500'], {}).values), /ws:\/\/ or wss:\/\//);
});

test('agent local DNS flags: off by default; auto; a list of HOST:PORT with IPv6 in brackets; the recursor checked; split horizon on unless =false', () => {
  const agent = (args: string[], env: Record<string, string> = {}) => agentOptions(parseFlags(agentFlags, ['--aggregator', 'ws://10.0.0.1:8500', ...args], env).values);
  const off = agent([]);
  assert.equal(off.localDns, undefined);
  assert.equal(off.splitHorizon, true);
  assert.equal(off.domain, 'consul');
  assert.equal(agent([], { PORTOLAN_LOCAL_DNS: 'auto' }).localDns, 'auto');
  assert.deepEqual(agent(['--local-dns', '127.0.0.1:8600,[fd00::1]:53']).localDns, [{ host: '127.0.0.1', port: 8600 }, { host: 'fd00::1', port: 53 }]);
  assert.equal(agent(['--recursor', '[fd00::53]:53']).recursor, '[fd00::53]:53');
  assert.equal(agent(['--split-horizon=false']).splitHorizon, false);
  assert.throws(() => agent(['--local-dns', '127.0.0.1:99999']), /--local-dns must be HOST:PORT/);
  assert.throws(() => agent(['--recursor', 'resolver:dns']), /--recursor must be HOST:PORT/);
});

test('a list flag given twice adds to it; any other flag given twice keeps the last', () => {
  const { values } = parseFlags(specs, ['--tags', 'a,b', '--tags=c', '--ip', '1.1.1.1', '--ip', '2.2.2.2'], {});
  assert.deepEqual(values.tags, ['a', 'b', 'c']);
  assert.equal(values.ip, '2.2.2.2');
});

test('api tokens: repeated flag, comma-separated env, a file with comments (a warning when group/others can read it); --metrics-token; per-client cap', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portolan-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens');
  writeFileSync(file, '# readers\nfile-one\n\n  file-two  \n# old: nothing\n');
  const options = (args: string[], env: Record<string, string> = {}) => {
    const warnings: string[] = [];
    const o = aggregatorOptions(parseFlags(aggregatorFlags, args, env).values, (fields, msg) => warnings.push(`${msg} ${JSON.stringify(fields)}`));
    return { o, warnings };
  };
  assert.deepEqual(options(['--api-token', 'a', '--api-token', 'b']).o.apiTokens, ['a', 'b']);
  assert.deepEqual(options([], { PORTOLAN_API_TOKEN: 'a,b' }).o.apiTokens, ['a', 'b']);
  chmodSync(file, 0o600);
  const quiet = options(['--api-token', 'a', '--api-token-file', file]);
  assert.deepEqual(quiet.o.apiTokens, ['a', 'file-one', 'file-two']);
  assert.deepEqual(quiet.warnings, []);
  chmodSync(file, 0o644);
  const loud = options([], { PORTOLAN_API_TOKEN_FILE: file });
  assert.deepEqual(loud.o.apiTokens, ['file-one', 'file-two']);
  assert.equal(loud.warnings.length, 1);
  assert.match(loud.warnings[0]!, /readable by group or others.*"mode":"0644"/);
  assert.ok(!loud.warnings[0]!.includes('file-one'), 'the warning names the file, never a token');
  writeFileSync(file, '# nothing yet\n');
  assert.throws(() => options(['--api-token-file', file]), /--api-token-file: no token in/);
  assert.throws(() => options(['--api-token-file', join(dir, 'missing')]), /--api-token-file: cannot read/);
  assert.equal(options(['--metrics-token', 'm']).o.metricsToken, 'm');
  assert.equal(options([], { PORTOLAN_HTTP_MAX_CONNS_PER_CLIENT: '0' }).o.httpMaxConnsPerClient, 0);
});

test('agent credential flags: --agent-tokens read at start (a bad line is a usage error with its number, not its token); --client-ca needs TLS; the agent\'s --tls-cert/--tls-key go together and only over wss://', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-flags-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  const aggregator = (args: string[], env: Record<string, string> = {}) => aggregatorOptions(parseFlags(aggregatorFlags, args, env).values);
  const good = file('good', 'host1 s3cret-1\n');
  assert.equal(aggregator([], { PORTOLAN_AGENT_TOKENS: good }).agentTokens?.table.nodes, 1);
  assert.throws(() => aggregator(['--agent-tokens', file('bad', '# x\nhost1 s3cret-1 s3cret-2\n')]), (e) => e instanceof UsageError && /^--agent-tokens: .*bad line 2: expected "NODE-NAME TOKEN"/.test(e.message) && !e.message.includes('s3cret'));
  assert.throws(() => aggregator(['--client-ca', good]), /--client-ca needs --tls-cert and --tls-key/);
  const pem = file('pem', 'not read as PEM here\n');
  assert.equal(aggregator(['--tls-cert', pem, '--tls-key', pem], { PORTOLAN_CLIENT_CA: pem }).tls?.clientCa, 'not read as PEM here\n');
  const agent = (args: string[], env: Record<string, string> = {}) => agentOptions(parseFlags(agentFlags, args, env).values);
  assert.deepEqual(agent(['--aggregator', 'wss://a:8500', '--tls-cert', pem], { PORTOLAN_TLS_KEY: pem }).clientCertificate, { cert: 'not read as PEM here\n', key: 'not read as PEM here\n' });
  assert.throws(() => agent(['--aggregator', 'wss://a:8500', '--tls-cert', pem]), /--tls-cert and --tls-key go together/);
  assert.throws(() => agent(['--aggregator', 'wss://a:8500,ws://b:8500', '--tls-cert', pem, '--tls-key', pem]), /--tls-cert is sent only over wss:\/\/, but --aggregator has ws:\/\/b:8500/);
});

test("--advertise defaults to auto; registrator's --internal means container and refuses a contradicting --advertise", () => {
  const parse = (args: string[]) => agentOptions(parseFlags(agentFlags, ['--aggregator', 'ws://10.0.0.1:8500', ...args], {}).values).advertise;
  assert.equal(parse([]), 'auto');
  assert.equal(parse(['--advertise', 'host']), 'host');
  assert.equal(parse(['-internal']), 'container');
  assert.equal(parse(['--internal', '--advertise', 'container']), 'container');
  assert.throws(() => parse(['--internal', '--advertise', 'host']), /--internal means --advertise container, but --advertise is host/);
  assert.throws(() => parse(['--advertise', 'nat']), /--advertise must be one of auto, host, container/);
});

test('--ui-sample-interval: 10 s by default, PORTOLAN_UI_SAMPLE_INTERVAL or the flag; outside 1s..10m a usage error', () => {
  const interval = (args: string[], env: Record<string, string> = {}) => aggregatorOptions(parseFlags(aggregatorFlags, args, env).values).uiSampleIntervalMs;
  assert.equal(interval([]), 10_000);
  assert.equal(interval([], { PORTOLAN_UI_SAMPLE_INTERVAL: '1m' }), 60_000);
  assert.equal(interval(['--ui-sample-interval', '1s'], { PORTOLAN_UI_SAMPLE_INTERVAL: '1m' }), 1000);
  assert.equal(interval(['--ui-sample-interval', '10m']), 600_000);
  assert.throws(() => interval(['--ui-sample-interval', '500ms']), (e) => e instanceof UsageError && e.message === '--ui-sample-interval must be between 1s and 10m, got 500 ms');
  assert.throws(() => interval(['--ui-sample-interval', '11m']), /--ui-sample-interval must be between 1s and 10m/);
  assert.throws(() => interval(['--ui-sample-interval', 'soon']), /--ui-sample-interval must be a duration such as 500ms/);
});
