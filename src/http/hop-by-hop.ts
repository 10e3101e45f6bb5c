/**
 * The fields RFC 9110 §7.6.1 names as connection-specific: `Connection` itself and those an
 * intermediary removes before forwarding whether or not `Connection` lists them. They describe
 * one hop, in either direction, so neither the request upstream nor the response to the client
 * carries the other hop's. `Trailer` is not one of them (it is end to end); each direction says
 * why it drops it all the same.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
]);
