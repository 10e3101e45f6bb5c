import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changedPaths } from '../src/gateway/reload.js';

describe('the option paths a reload logs (no sockets)', () => {
  it('names the paths that changed, never the values', () => {
    const before = {
      upstream: 'https://a',
      policies: { management: 'passthrough' },
      clients: [{ key: 'gw-a…' }],
    };
    const after = {
      upstream: 'https://a',
      policies: { management: 'inject' },
      clients: [{ key: 'gw-b…' }, {}],
    };
    assert.deepEqual(changedPaths(before, after), ['policies.management', 'clients[0].key', 'clients[1]']);
  });

  it('reports nothing for equal values and the whole for values of different kinds', () => {
    assert.deepEqual(changedPaths({ a: [1] }, { a: [1] }), []);
    assert.deepEqual(changedPaths({ a: [1] }, { a: { 0: 1 } }), ['a']);
    assert.deepEqual(changedPaths(null, {}), ['(all)']);
  });
});
