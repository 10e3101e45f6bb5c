import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { upstreamFailureCause } from '../errors.js';
import type { AmpUpstreamCheck } from '../types.js';
import type { UpstreamConnection } from './upstream-connection.js';

const PROBE_TIMEOUT_MS = 3000;

/**
 * Whether the upstream answers at all, reached the way requests reach it (egress proxy, CAs);
 * any HTTP status counts, since the gateway only forwards. If not, why: the cause a request would
 * fail with, as in the request log.
 */
export function probeUpstream(
  upstreamBase: string,
  connection: UpstreamConnection,
): Promise<AmpUpstreamCheck> {
  const protocol = upstreamBase.startsWith('https:') ? 'https:' : 'http:';
  // Unpooled: a probe's connection is never one a request could be given. A silent proxy is given
  // up on as soon as a silent upstream is.
  const agent = connection.createAgent(protocol, false, PROBE_TIMEOUT_MS);
  const check = new Promise<AmpUpstreamCheck>((resolve) => {
    const request = protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(`${upstreamBase}/`, { method: 'HEAD', agent, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve({ ready: true });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (error) => resolve({ ready: false, cause: upstreamFailureCause(error) }));
    req.end();
  });
  return check.finally(() => agent.destroy());
}
