/**
 * Paths another server could read differently from the gateway: the unit tests of
 * `isAmbiguousPath` and the tests that send them over the wire share this one list.
 */
export const AMBIGUOUS_PATHS: readonly string[] = [
  '/threads/../api/user',
  '/threads/%2e%2e/api/user',
  '/threads/%2E%2E/api/user',
  '/threads/.%2e/api/user',
  '/threads/%2e./api/user',
  '/api/provider/../threads/T-1',
  '/api/provider/%2e%2e/%2e%2e/api/threads',
  '/api/provider/anthropic%2f..%2f..%2fthreads',
  '/api/provider/anthropic%2F..%2F..%2Fthreads',
  '/api/provider/a%5c..%5cthreads',
  '/api/provider/a\\..\\threads',
  '/api/./provider/x',
  '/api//provider/x',
  '/api/threads/%00',
  '/api/threads/x%252e%252e',
  '/api/threads/..;/user',
  '/threads/%',
  '/threads/%zz',
  '/api/threads/.',
  '/api/threads/T-1#/../../user',
  '/api/provider#x',
];

/** Paths that look unusual but that every server reads the same way. */
export const UNAMBIGUOUS_PATHS: readonly string[] = [
  '/api/threads/T-1',
  '/api/threads/',
  '/actors/gateway/threadActor/websocket/',
  '/threads.rss',
  '/.well-known/x',
  '/api/provider/google/v1beta/models/gemini-2.5:generateContent',
  '/api/threads/a%20b',
  '/api/threads/..x',
];
