import type { AmpProxyEventListener } from './events.js';

type LogMethod = (object: object, message?: string) => void;

/** A pino-style logger: an object first, then a message. pino, bunyan-likes and console-shaped wrappers fit. */
export interface AmpLogger {
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  debug?: LogMethod;
}

/** One structured line per finished request or WebSocket; failures of the upstream at `warn`. */
export function loggingListener(logger: AmpLogger): AmpProxyEventListener {
  return (event) => {
    switch (event.type) {
      case 'request-end': {
        const failed = event.outcome === 'upstream-error' || event.outcome === 'timeout';
        (failed ? logger.warn : logger.info).call(logger, event, 'amp request');
        return;
      }
      case 'websocket-close':
        logger.info(event, 'amp websocket');
        return;
      default:
        logger.debug?.call(logger, event, `amp ${event.type}`);
    }
  };
}
