import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterElecting } from '../../aggregator/catalog/etcd/election-probe.js';

const m = (id: string, leader: string) => ({ id, leader });

test('leader killed: the two followers, one a candidate already, are a majority without a leader that answers: electing', () => {
  assert.equal(clusterElecting([m('2', '1'), m('3', '0')], 3), true);
  assert.equal(clusterElecting([m('2', '0'), m('3', '0')], 3), true);
});

test('before any follower noticed (both still follow the dead leader) it is not called an election: the cut rule applies', () => {
  assert.equal(clusterElecting([m('2', '1'), m('3', '1')], 3), false);
});

test('a leader that answers, even newly elected, is no election', () => {
  assert.equal(clusterElecting([m('1', '1'), m('2', '1'), m('3', '0')], 3), false);
  assert.equal(clusterElecting([m('2', '2'), m('3', '0')], 3), false);
});

test('a minority answering (one member cut off alone, campaigning) is not an election of the cluster', () => {
  assert.equal(clusterElecting([m('3', '0')], 3), false);
  assert.equal(clusterElecting([m('4', '0'), m('5', '0')], 5), false);
  assert.equal(clusterElecting([m('3', '0'), m('4', '0'), m('5', '0')], 5), true);
});

test('no member list (size unknown) or no answer: not an election', () => {
  assert.equal(clusterElecting([m('2', '0'), m('3', '0')], 0), false);
  assert.equal(clusterElecting([], 3), false);
});
