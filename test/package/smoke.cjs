// Consumed the way a CommonJS host app would: require() of the packed tarball.
const http = require('node:http');
const assert = require('node:assert/strict');
const express = require('express');
const {
  ampRouter,
  ampProviderProxy,
  ampManagementProxy,
  attachUpgrade,
  AmpProxyConfigError,
} = require('amp-proxy-middleware');

assert.equal(typeof ampProviderProxy, 'function');
assert.equal(typeof ampManagementProxy, 'function');
assert.equal(typeof attachUpgrade, 'function');
assert.throws(() => ampRouter({ policies: { management: 'pass' } }), AmpProxyConfigError);

const upstream = http.createServer((req, res) =>
  res.end(JSON.stringify({ auth: req.headers.authorization })),
);
upstream.listen(0, '127.0.0.1', () => {
  const app = express();
  const router = ampRouter({
    upstream: `http://127.0.0.1:${upstream.address().port}`,
    upstreamKey: 'server-key',
  });
  app.use(router);
  const server = app.listen(0, '127.0.0.1', () => {
    http.get(`http://127.0.0.1:${server.address().port}/api/provider/x`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        assert.deepEqual(JSON.parse(body), { auth: 'Bearer server-key' });
        console.log('cjs ok');
        server.close();
        upstream.close();
        router.close();
      });
    });
  });
});
