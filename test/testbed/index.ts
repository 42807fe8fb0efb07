/** The multi-host Docker testbed: see README.md in this directory. */
export { Testbed, Host, type TestbedOptions } from './testbed.js';
export { testbedSkipReason, useTestbed } from './node-test.js';
export { TEST_IMAGE, TEST_PAGE } from './image.js';
export type { HttpRequest, HttpResult } from './http-probe.js';
export type { RunResult } from './processes.js';
