// Consumed the way an ESM host app would: import of the packed tarball.
import http from 'node:http';
import assert from 'node:assert/strict';
import express from 'express';
import { ampRouter, AmpProxyConfigError } from 'amp-proxy-middleware';

assert.throws(() => ampRouter({ upstream: 'nope' }), AmpProxyConfigError);

const upstream = http.createServer((req, res) =>
  res.end(JSON.stringify({ auth: req.headers.authorization ?? null })),
);
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const app = express();
const router = ampRouter({
  upstream: `http://127.0.0.1:${upstream.address().port}`,
  upstreamKey: 'server-key',
});
app.use('/amp', router);
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const res = await fetch(`http://127.0.0.1:${server.address().port}/amp/api/threads/T-1`, {
  headers: { authorization: 'Bearer user-token' },
});
assert.deepEqual(await res.json(), { auth: 'Bearer user-token' });
console.log('esm ok');
server.close();
upstream.close();
await router.close();
