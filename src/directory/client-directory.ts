import type { IncomingHttpHeaders } from 'node:http';
import type { ResolvedClient } from '../auth/clients.js';
import { CREDENTIAL_HEADERS } from '../auth/credential-names.js';
import { readCredentials, type PresentedCredentials } from '../auth/credentials.js';
import { containsKey, findKeys, isKeyToken, KeyTable, type KeyRecogniser } from '../auth/key-recognition.js';
import type { AmpClientResolver, AmpDirectoryClient } from '../types.js';
import { validateSet } from '../limits/limit-options.js';
import { ClientCache, type ClientCacheSettings } from './client-cache.js';
import { ShapeRecogniser, type KeyShape } from './key-shape.js';

/**
 * Stands for a key of the directory's shape that the directory does not know (wrong, revoked,
 * expired): still a gateway key, so never forwarded and never misplaced unnoticed, but nobody's.
 */
const UNKNOWN_KEY: ResolvedClient = Object.freeze({ name: undefined, upstreamKey: undefined });

/**
 * A shapeless directory's keys are known only once presented: at factory time it recognises no
 * key, yet callers need one (`size`), as with a non-empty list.
 */
const SHAPELESS: KeyRecogniser<never> = {
  size: Infinity,
  shortest: Infinity,
  hasKeyOfLength: () => false,
  lookup: () => undefined,
};
const BEARER = /^bearer\s+/i;
/** Keys looked up per request (see `present`). */
const MAX_KEYS_RESOLVED = 2;

/** A directory's client, with the moment its key stops working, which bounds how long it is cached. */
interface DirectoryEntry extends ResolvedClient {
  readonly expiresAt: number | undefined;
}

/** A directory answer checked: an answer that does not fit fails closed, like a failing resolver. */
function toClient(answer: unknown, shape: KeyRecogniser<unknown>): DirectoryEntry | undefined {
  if (answer === undefined || answer === null) return undefined;
  const { name, team, upstreamKey, expiresAt, limits } = answer as Partial<AmpDirectoryClient>;
  const fits =
    typeof name === 'string' &&
    name !== '' &&
    (team === undefined || typeof team === 'string') &&
    (expiresAt === undefined || typeof expiresAt === 'number') &&
    (upstreamKey === undefined || (typeof upstreamKey === 'string' && upstreamKey.trim() !== ''));
  if (!fits) throw new TypeError('the client directory answered something that is not a client');
  // A mapped key that is itself a gateway key would leave the gateway as one.
  if (upstreamKey !== undefined && containsKey(upstreamKey, shape))
    throw new TypeError('a client mapped to a gateway key');
  if (expiresAt !== undefined && expiresAt <= Date.now()) return undefined;
  // Limits that do not validate throw too: the request fails closed.
  const ownLimits = validateSet(limits, 'limits');
  return { name, team, upstreamKey: upstreamKey?.trim(), expiresAt, limits: ownLimits };
}

/** Keys of a shape, each resolved (or `UNKNOWN_KEY`) before the request is read with them. */
class ResolvedShape implements KeyRecogniser<ResolvedClient> {
  readonly size = Infinity;
  readonly shortest: number;

  constructor(
    private readonly shape: ShapeRecogniser,
    private readonly resolved: ReadonlyMap<string, ResolvedClient | undefined>,
  ) {
    this.shortest = shape.shortest;
  }

  hasKeyOfLength(length: number): boolean {
    return this.shape.hasKeyOfLength(length);
  }

  lookup(token: string): ResolvedClient | undefined {
    // A key presented in a credential header was checked against the shape when it was collected.
    if (this.resolved.has(token)) return this.resolved.get(token) ?? UNKNOWN_KEY;
    return this.shape.lookup(token) === undefined ? undefined : UNKNOWN_KEY;
  }
}

export interface ClientDirectorySpec {
  readonly resolve: AmpClientResolver;
  readonly shape: KeyShape | undefined;
  readonly cache: ClientCacheSettings;
  /** Where keys are looked up, for the start table and `--print-config` (never a secret). */
  readonly description: string;
}

/**
 * Gateway keys looked up in a directory rather than a list: resolved through a cache (see
 * `ClientCache`), and recognised in requests by their shape when the directory declares one.
 */
export class ClientDirectory {
  /** What policies and the redactor recognise as a gateway key. */
  readonly recogniser: KeyRecogniser<unknown>;
  readonly description: string;
  readonly #shape: ShapeRecogniser | undefined;
  readonly #cache: ClientCache<DirectoryEntry>;

  constructor({ resolve, shape, cache, description }: ClientDirectorySpec) {
    this.description = description;
    this.#shape = shape && new ShapeRecogniser(shape);
    this.recogniser = this.#shape ?? SHAPELESS;
    const recogniser = this.recogniser;
    this.#cache = new ClientCache(
      async (key) => toClient(await resolve(key), recogniser),
      cache,
      (client) => client.expiresAt,
    );
  }

  /** Whether only credential headers are searched for keys (no shape declared). */
  get isShapeless(): boolean {
    return this.#shape === undefined;
  }

  /**
   * Reads a request's credentials (see `readCredentials`) once the keys it presents in its
   * credential headers are resolved: at once when the cache knows them all, else a promise that
   * rejects with `DirectoryUnavailable` when the directory fails.
   */
  present(
    headers: IncomingHttpHeaders,
    path: string,
    query: string,
    tokenHeader: string,
  ): PresentedCredentials | Promise<PresentedCredentials> {
    const resolved = new Map<string, ResolvedClient | undefined>();
    let lookups: Promise<unknown>[] | undefined;
    let looked = 0;
    for (const key of this.#presentedKeys(headers, tokenHeader)) {
      // Two different keys already make the request refused as two clients': more are not looked
      // up, so a request cannot make the directory answer for a pile of made-up keys. (Without a
      // shape, the candidates are at most the credential headers, and each must be looked up.)
      if (this.#shape && looked++ === MAX_KEYS_RESOLVED) break;
      const answer = this.#cache.get(key);
      if (answer instanceof Promise)
        (lookups ??= []).push(answer.then((client) => resolved.set(key, client)));
      else resolved.set(key, answer);
    }
    const read = (): PresentedCredentials => {
      const credentials = readCredentials(headers, path, query, tokenHeader, this.#readerFor(resolved));
      return credentials.client === UNKNOWN_KEY ? { ...credentials, client: undefined } : credentials;
    };
    return lookups ? Promise.all(lookups).then(read) : read();
  }

  /**
   * The client a request's credential headers identify, as far as the cache knows it now (for
   * `clientOf`, which cannot wait): a key not cached yet answers `undefined`, and its lookup starts,
   * so that the router's own admission finds it cached.
   */
  cachedClient(headers: IncomingHttpHeaders, tokenHeader: string): ResolvedClient | undefined {
    const presented = this.present(headers, '/', '', tokenHeader);
    if (presented instanceof Promise) {
      // The router's admission answers a failing directory; here nobody waits for it.
      presented.catch(() => undefined);
      return undefined;
    }
    return presented.conflictingClients ? undefined : presented.client;
  }

  #readerFor(resolved: Map<string, ResolvedClient | undefined>): KeyRecogniser<ResolvedClient> {
    if (this.#shape) return new ResolvedShape(this.#shape, resolved);
    const table = new KeyTable<ResolvedClient>();
    for (const [key, client] of resolved) if (client) table.add(key, client);
    return table;
  }

  /**
   * The keys to resolve: with a shape, every token of it in a credential header, wherever
   * `findKeys` finds one; without, every credential header value that is one whole token.
   */
  #presentedKeys(headers: IncomingHttpHeaders, tokenHeader: string): Set<string> {
    const keys = new Set<string>();
    const collect = (value: string | string[] | undefined): void => {
      const raw = Array.isArray(value) ? value[0] : value;
      if (raw === undefined) return;
      if (this.#shape) {
        findKeys(raw, this.#shape, (token) => void keys.add(token));
        return;
      }
      const token = raw.trim().replace(BEARER, '').trim();
      if (isKeyToken(token)) keys.add(token);
    };
    for (const header of CREDENTIAL_HEADERS) collect(headers[header]);
    collect(headers[tokenHeader]);
    return keys;
  }
}
