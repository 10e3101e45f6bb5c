// Type-checked the way a TypeScript host app would (moduleResolution nodenext).
import express from 'express';
import {
  ampManagementProxy,
  ampProviderProxy,
  ampRouter,
  attachUpgrade,
  type AmpCustomPolicy,
  type AmpErrorCode,
  type AmpProxyOptions,
} from 'amp-proxy-middleware';

const teamPolicy: AmpCustomPolicy = async (req, context) => ({
  headers: {
    authorization: `Bearer ${context.tokenHeaderValue ?? (await context.serverKey())}`,
    'x-team': String(req.headers['x-team']),
  },
});
const options: AmpProxyOptions = {
  upstream: 'https://ampcode.com',
  clients: [{ key: 'gw-1', name: 'alice', upstreamKey: 'amp-1' }],
  policies: { management: 'dual-token', actors: teamPolicy, browser: 'redirect' },
};
const code: AmpErrorCode = 'amp_bad_path';

const app = express();
const router = express.Router();
router.use('/api/provider', (_req, _res, next) => next(), ampProviderProxy(options));
router.use('/api', ampManagementProxy(options));
const all = ampRouter(options);
app.use(all);
app.use('/amp', router);
const server = app.listen(0);
const detach: () => void = attachUpgrade(server, all, { prefix: '/amp' });
void all.close().then(() => detach());
console.log(code);

// @ts-expect-error inject is refused on browser pages at the type level too
ampRouter({ policies: { browser: 'inject' } });
