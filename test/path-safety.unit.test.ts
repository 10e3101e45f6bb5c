/**
 * Which request paths are refused as ambiguous (src/routing/path-safety.ts) and how a request
 * target is split (src/routing/request-target.ts): pure functions, no sockets. What the middleware
 * answers for such paths over the wire is in path-safety.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAmbiguousPath, isPlainPath, normalisedPath } from '../src/routing/path-safety.js';
import { originForm, splitRequestTarget } from '../src/routing/request-target.js';
import { AMBIGUOUS_PATHS, UNAMBIGUOUS_PATHS } from './support/ambiguous-paths.js';

describe('isAmbiguousPath', () => {
  for (const path of AMBIGUOUS_PATHS) {
    it(`${JSON.stringify(path)} is ambiguous`, () => assert.equal(isAmbiguousPath(path), true));
  }
  for (const path of UNAMBIGUOUS_PATHS) {
    it(`${JSON.stringify(path)} is not ambiguous`, () => assert.equal(isAmbiguousPath(path), false));
  }

  it('a path must start with /', () => {
    for (const path of ['', 'api/threads', '*', '?q=1', 'http://evil.example/api/threads']) {
      assert.equal(isAmbiguousPath(path), true, JSON.stringify(path));
    }
  });

  it('one trailing slash is fine, an empty segment anywhere else is not', () => {
    assert.equal(isAmbiguousPath('/api/threads/'), false);
    assert.equal(isAmbiguousPath('/api/threads/a%20b/'), false, 'also when the path needs a closer look');
    assert.equal(isAmbiguousPath('/'), false);
    assert.equal(isAmbiguousPath('/api/threads//'), true);
    assert.equal(isAmbiguousPath('//api/threads'), true);
  });

  it('dot segments are found with path parameters and encodings, and dots inside names are not', () => {
    for (const path of ['/a/.;x/b', '/a/..;x', '/a/%2e;x/b', '/a/%2e%2e%3bx/b', '/a/..']) {
      assert.equal(isAmbiguousPath(path), true, path);
    }
    for (const path of ['/a/.b', '/a/b.', '/a/...', '/a/.well-known', '/a/x;y/b', '/a/%41']) {
      assert.equal(isAmbiguousPath(path), false, path);
    }
  });

  it('encoded separators, NUL, malformed escapes and double encoding are refused in any segment', () => {
    for (const path of [
      '/a%2fb',
      '/a%5Cb',
      '/a%00',
      '/a%2',
      '/a%g0',
      '/a%252f',
      '/a%255c',
      '/a%2500',
      '/a%252E',
    ]) {
      assert.equal(isAmbiguousPath(path), true, path);
    }
  });

  it('a raw backslash, NUL or # anywhere is refused', () => {
    for (const path of ['/a\\b', '/a\0', '/a#', '/a/b#c/d']) assert.equal(isAmbiguousPath(path), true, path);
  });
});

describe('isPlainPath: the fast path that needs no closer look', () => {
  it('a path of ordinary segments is plain', () => {
    for (const path of [
      '/',
      '/api/threads/T-1',
      '/api/provider/google/v1beta/models/x:generateContent',
      '/a.b/c-d_e~f',
    ]) {
      assert.equal(isPlainPath(path), true, path);
    }
  });

  it('anything that could be read differently needs inspection', () => {
    for (const path of [
      '',
      'api',
      '/a%20b',
      '/a\\b',
      '/a\0b',
      '/a/.well-known',
      '/a//b',
      '/a;b',
      '/a#b',
      ...AMBIGUOUS_PATHS,
    ]) {
      assert.equal(isPlainPath(path), false, JSON.stringify(path));
    }
  });

  it('a plain path is never ambiguous', () => {
    for (const path of ['/', '/api/threads/T-1', ...UNAMBIGUOUS_PATHS.filter(isPlainPath)]) {
      assert.equal(isAmbiguousPath(path), false, path);
    }
  });
});

describe('normalisedPath: what a lenient upstream would serve', () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['/threads/%2e%2e/api/user', '/api/user'],
    ['/x/..%2f..%2fapi%5cthreads', '/api/threads'],
    ['/static/%252e%252e/api', '/api'],
    ['/a/./b', '/a/b'],
    ['/../../x', '/x'],
    ['/a//b/', '/a/b'],
    ['/a\\b', '/a/b'],
    ['/a\0b', '/ab'],
    ['/api/provider;x/anthropic', '/api/provider/anthropic'],
    ['/api/%70rovider/x', '/api/provider/x'],
    ['/%61pi/threads', '/api/threads'],
    // Three decoding rounds at most: a fourth layer of encoding stays encoded.
    ['/x/%25252e%25252e/y', '/y'],
    ['/x/%2525252e%2525252e/y', '/x/%2e%2e/y'],
    // A malformed escape stops decoding where it is, the rest is still resolved.
    ['/a/%zz/../b', '/a/b'],
    ['/', '/'],
    ['', '/'],
  ];
  for (const [path, expected] of cases) {
    it(`${JSON.stringify(path)} -> ${JSON.stringify(expected)}`, () =>
      assert.equal(normalisedPath(path), expected));
  }
});

describe('splitRequestTarget', () => {
  it('splits at the first ?, and tells an empty query from none', () => {
    assert.deepEqual(splitRequestTarget('/api/threads'), { path: '/api/threads', query: undefined });
    assert.deepEqual(splitRequestTarget('/api/threads?'), { path: '/api/threads', query: '' });
    assert.deepEqual(splitRequestTarget('/api/threads?a=1&b=2'), { path: '/api/threads', query: 'a=1&b=2' });
    assert.deepEqual(splitRequestTarget('/a?b?c#d'), { path: '/a', query: 'b?c#d' });
    assert.deepEqual(splitRequestTarget('?x'), { path: '', query: 'x' });
    assert.deepEqual(splitRequestTarget(''), { path: '', query: undefined });
  });
});

describe('originForm', () => {
  const cases: [target: string, expected: string][] = [
    ['/api/threads?q=1', '/api/threads?q=1'],
    ['http://gateway:8317/api/threads?q=1', '/api/threads?q=1'],
    ['HTTPS://[::1]:8317/actors/x', '/actors/x'],
    ['http://gateway?q=1', '/?q=1'],
    ['http://gateway', '/'],
    ['http://gateway//api/../x', '//api/../x'],
    ['http://user:secret@gateway/api/threads', 'http://user:secret@gateway/api/threads'],
    ['ftp://gateway/api/threads', 'ftp://gateway/api/threads'],
    ['*', '*'],
    ['gateway:8317', 'gateway:8317'],
  ];
  for (const [target, expected] of cases) {
    it(`${JSON.stringify(target)} -> ${JSON.stringify(expected)}`, () =>
      assert.equal(originForm(target), expected));
  }
});
