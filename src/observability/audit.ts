import type { AmpAuditLogger, AmpErrorCode, AmpProxyEventListener } from '../types.js';
import { clientLabel, createdThread } from './usage.js';

/** The refusals of a limit, as the audit names them. */
const LIMIT_CODES: ReadonlySet<AmpErrorCode | undefined> = new Set<AmpErrorCode | undefined>([
  'amp_rate_limited',
  'amp_session_limit',
  'amp_limits_unavailable',
]);

/** Without the query: a query may carry what a user searched for; the path says what was done. */
function pathOnly(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/**
 * Events as audit lines: who (the client's name, never the key) did what and when. Built only from
 * events, whose paths were redacted: no line holds a key, a body, a prompt or a query.
 */
export function auditListener(audit: AmpAuditLogger): AmpProxyEventListener {
  const line = (action: string, fields: object, message: string): void =>
    audit.info({ audit: action, at: new Date().toISOString(), ...fields }, message);
  return (event) => {
    switch (event.type) {
      case 'request-end': {
        const fields = {
          client: clientLabel(event.client),
          group: event.group,
          method: event.method,
          path: pathOnly(event.path),
          status: event.status ?? null,
        };
        if (LIMIT_CODES.has(event.error))
          line('limit-refused', { ...fields, code: event.error }, 'refused by a limit');
        else if (createdThread(event.method, event.path, event.status))
          line('thread-created', fields, 'thread created');
        else line('request', fields, 'request');
        return;
      }
      case 'websocket-open':
        line(
          'session-opened',
          { client: clientLabel(event.client), group: event.group, path: pathOnly(event.path) },
          'agent session opened',
        );
        return;
      case 'websocket-close': {
        const fields = { client: clientLabel(event.client), group: event.group, path: pathOnly(event.path) };
        if (LIMIT_CODES.has(event.error))
          line('limit-refused', { ...fields, code: event.error }, 'refused by a limit');
        else if (event.opened)
          line(
            'session-closed',
            {
              ...fields,
              closeCode: event.upstreamCloseCode ?? null,
              outcome: event.outcome,
              durationMs: event.durationMs,
            },
            'agent session closed',
          );
      }
    }
  };
}
