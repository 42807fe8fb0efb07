import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, UsageError } from '../../cli/flags.js';
import { logFlags, logFormat } from '../../cli/common-flags.js';
import { chooseLogFormat } from '../../cli/logger.js';

const formatOf = (argv: string[], env: NodeJS.ProcessEnv, terminal: boolean) => logFormat(parseFlags(logFlags, argv, env).values, terminal);

test('without a flag: pretty when stderr is a terminal, JSON when it is not', () => {
  assert.equal(formatOf([], {}, true), 'pretty');
  assert.equal(formatOf([], {}, false), 'json');
});

test('--log-format json or pretty wins over the terminal guess, as does PORTOLAN_LOG_FORMAT', () => {
  assert.equal(formatOf(['--log-format', 'json'], {}, true), 'json');
  assert.equal(formatOf(['--log-format=pretty'], {}, false), 'pretty');
  assert.equal(formatOf([], { PORTOLAN_LOG_FORMAT: 'json' }, true), 'json');
  assert.equal(formatOf([], { PORTOLAN_LOG_FORMAT: 'pretty' }, false), 'pretty');
  assert.equal(formatOf(['--log-format', 'auto'], { PORTOLAN_LOG_FORMAT: 'json' }, true), 'pretty');
});

test('--log-pretty (and PORTOLAN_LOG_PRETTY) is --log-format pretty, also off a terminal', () => {
  assert.equal(formatOf(['--log-pretty'], {}, false), 'pretty');
  assert.equal(formatOf([], { PORTOLAN_LOG_PRETTY: 'true' }, false), 'pretty');
  assert.equal(formatOf(['--log-pretty', '--log-format', 'pretty'], {}, false), 'pretty');
  assert.equal(chooseLogFormat('auto', true, false), 'pretty');
});

test('--log-pretty with --log-format json is a usage error; an unknown format is refused', () => {
  assert.throws(() => formatOf(['--log-pretty', '--log-format', 'json'], {}, true), (e) => e instanceof UsageError && /--log-pretty means --log-format pretty/.test(e.message));
  assert.throws(() => formatOf(['--log-format', 'text'], {}, true), /--log-format must be one of auto, pretty, json/);
});
