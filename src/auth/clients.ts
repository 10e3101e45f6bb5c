import type { AmpGroup } from '../types.js';
import { KeyTable } from './key-recognition.js';

/** A gateway client as the rest of the library sees it once options are resolved. */
export interface ResolvedClient {
  readonly name: string | undefined;
  /** The user's own Amp key, used instead of the server key and instead of the gateway key. */
  readonly upstreamKey: string | undefined;
  /** Clients from a directory may belong to a team. */
  readonly team?: string | undefined;
  /** A directory client's own limits, as validated by `limits/limit-options.ts`. */
  readonly limits?: ClientLimits | undefined;
}

/** Limits of one client (see `LimitSet`); declared here so that auth depends on no other folder. */
export interface ClientLimits {
  readonly requestsPerMinute: Readonly<Partial<Record<AmpGroup, number>>>;
  readonly concurrentWebSockets: number | undefined;
  readonly threadsPerHour: number | undefined;
}

/**
 * The gateway keys, looked up by digest (see `KeyTable`), so a wrong key and a missing key are
 * indistinguishable from outside; `findKeys` recognises them wherever they appear.
 */
export class ClientTable extends KeyTable<ResolvedClient> {}
