// Type-level check, compiled by `npm run typecheck`: the real prom-client 15 module fits
// `createAmpMetrics` in every way a host imports it, without casts.
import * as promClientNamespace from 'prom-client';
import promClientDefault from 'prom-client';
import { Counter, Gauge, Histogram, register, Registry, type OpenMetricsContentType } from 'prom-client';
import { createAmpMetrics, type AmpMetrics, type PromClientLike } from '../../src/index.js';

createAmpMetrics(promClientNamespace, { registry: promClientNamespace.register });
createAmpMetrics(promClientDefault, { registry: promClientDefault.register });
createAmpMetrics(promClientNamespace);
createAmpMetrics({ Registry, Counter, Gauge, Histogram }, { registry: register });

createAmpMetrics(promClientNamespace, { registry: new Registry<OpenMetricsContentType>() });
const { registry }: AmpMetrics = createAmpMetrics(promClientDefault);
// Annotated as the library's type, the module fits as well.
const asLike: PromClientLike = promClientNamespace;
const fromParts: PromClientLike = { Registry, Counter, Gauge, Histogram };

// A hand-written stand-in fits too.
createAmpMetrics({
  Registry: class {
    readonly contentType = 'text/plain';
    metrics(): Promise<string> {
      return Promise.resolve('');
    }
  },
  Counter: class {
    inc(): void {}
  },
  Gauge: class {
    inc(): void {}
    dec(): void {}
    set(): void {}
  },
  Histogram: class {
    observe(): void {}
  },
});

// @ts-expect-error a module without Histogram is not a client
createAmpMetrics({ Registry, Counter, Gauge });
// @ts-expect-error a registry needs `metrics()` and `contentType`
createAmpMetrics(promClientNamespace, { registry: {} });

export { asLike, fromParts, registry };
