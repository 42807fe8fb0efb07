import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMetadata, portMetadata, splitTags } from '../../agent/metadata.js';
import { defaultName, dnsLabel, imageBaseName, serviceName } from '../../agent/naming.js';

const id = 'sha256:be4dcfaa41f9dafc08b80ddc9918d73be071af1f4f5898e32daab51e802de4f2';

test('image base name drops registry, path, tag and digest', () => {
  assert.equal(imageBaseName('registry:5000/org/app:1.2', id), 'app');
  assert.equal(imageBaseName('org/app:1.2@sha256:abcd', id), 'app');
  assert.equal(imageBaseName('app@sha256:abcd', id), 'app');
  assert.equal(imageBaseName('redis', id), 'redis');
  assert.equal(imageBaseName(id, id), undefined);
  assert.equal(imageBaseName('be4dcfaa41f9', id), undefined);
  assert.equal(imageBaseName('deadbeefcafe', id), 'deadbeefcafe', 'hex that is not this image ID is a name');
});

test('default name: compose label, image, container name, then "service"', () => {
  const c = { image: 'nginx:1', imageId: id, labels: {}, containerName: 'c_1' };
  assert.equal(defaultName({ ...c, labels: { 'com.docker.compose.service': 'My_Api' } }), 'my-api');
  assert.equal(defaultName(c), 'nginx');
  assert.equal(defaultName({ ...c, image: id }), 'c-1');
  assert.equal(defaultName({ ...c, image: id, containerName: '___' }), 'service');
});

test('DNS labels: lower case, [a-z0-9-], no leading/trailing/double dashes, 63 chars', () => {
  assert.equal(dnsLabel('My_App.v2@sha256'), 'my-app-v2-sha256');
  assert.equal(dnsLabel('--a__b--'), 'a-b');
  assert.equal(dnsLabel('x'.repeat(70)).length, 63);
  assert.equal(dnsLabel(`${'a'.repeat(62)}_b`), 'a'.repeat(62));
  assert.equal(serviceName('web', 'img', 443), 'web-443');
  assert.equal(serviceName('___', 'img', undefined), 'img');
  assert.equal(serviceName('x'.repeat(70), 'img', 8080), `${'x'.repeat(58)}-8080`);
});

test('metadata: prefix, case-insensitive keys, labels over env, port keys over generic', () => {
  const md = parseMetadata(['SERVICE_NAME=env', 'SERVICE_80_NAME=p80', 'service_name=no-prefix', 'SERVICE_Tags=a', 'BROKEN', 'SERVICE_X=1=2'], {
    SERVICE_name: 'label',
    SERVICE_80_TAGS: 'b',
  });
  assert.deepEqual(portMetadata(md, 80), { name: 'p80', nameFromPort: true, tags: ['b'], id: undefined, ignore: false, meta: { x: '1=2' } });
  assert.deepEqual(portMetadata(md, 443), { name: 'label', nameFromPort: false, tags: ['a'], id: undefined, ignore: false, meta: { x: '1=2' } });
  assert.equal(portMetadata(parseMetadata(['SERVICE_IGNORE=0'], {}), 1).ignore, true);
  assert.equal(portMetadata(parseMetadata(['SERVICE_IGNORE='], {}), 1).ignore, false);
  assert.deepEqual(splitTags('a, b\\,c ,,d,'), ['a', 'b,c', 'd']);
});
