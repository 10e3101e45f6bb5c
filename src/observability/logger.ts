import type { AmpLogger, AmpProxyEventListener } from '../types.js';

/** One structured line per finished request or WebSocket; failures and refusals of the upstream at `warn`. */
export function loggingListener(logger: AmpLogger): AmpProxyEventListener {
  return (event) => {
    switch (event.type) {
      case 'request-end': {
        const failed = event.outcome === 'upstream-error' || event.outcome === 'timeout';
        (failed ? logger.warn : logger.info).call(logger, event, 'amp request');
        return;
      }
      case 'websocket-close': {
        const failed =
          event.outcome === 'upstream-error' ||
          event.outcome === 'timeout' ||
          event.outcome === 'upstream-refused';
        (failed ? logger.warn : logger.info).call(logger, event, 'amp websocket');
        return;
      }
      default:
        logger.debug?.call(logger, event, `amp ${event.type}`);
    }
  };
}
