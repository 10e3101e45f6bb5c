// Type-level check, compiled by `npm run typecheck`: the factories fit both Express majors' own
// types the way host apps use them, without casts.
import express4 from 'express4';
import express5, { type Request, type Response } from 'express';
import {
  ampManagementProxy,
  ampProviderProxy,
  ampRouter,
  type LocalProviderHandler,
} from '../../src/index.js';

const serveLocally: LocalProviderHandler = (req: Request, res: Response) => {
  res.json({ model: req.body.model });
};

const app4 = express4();
app4.use(ampRouter());
app4.use('/amp', ampRouter({ localProvider: () => serveLocally }));
const router4 = express4.Router();
router4.use('/api/provider', (_req, _res, next) => next(), ampProviderProxy());
router4.use('/api', ampManagementProxy());

const app5 = express5();
app5.use(ampRouter());
const router5 = express5.Router();
router5.use('/api/provider', ampProviderProxy());
app5.use('/amp', router5);

// The factory itself is not a middleware: passing it uncalled is a compile error in both majors.
// @ts-expect-error app.use(ampRouter) instead of app.use(ampRouter())
app4.use(ampRouter);
// @ts-expect-error the same with Express 5 and a single-group factory
app5.use('/api/provider', ampProviderProxy);
