import { createHash } from 'node:crypto';

/** A gateway client as the rest of the library sees it once options are resolved. */
export interface ResolvedClient {
  readonly name: string | undefined;
  /** The user's own Amp key, used instead of the server key and instead of the gateway key. */
  readonly upstreamKey: string | undefined;
}

function digest(key: string): string {
  return createHash('sha256').update(key).digest('base64');
}

/**
 * Gateway keys, looked up by their SHA-256 digest: the lookup's timing depends on the digest,
 * never on how many leading characters of a guessed key were right, so a wrong key and a
 * missing key are indistinguishable from outside.
 */
export class ClientTable {
  readonly #byDigest = new Map<string, ResolvedClient>();

  add(key: string, client: ResolvedClient): boolean {
    const id = digest(key);
    if (this.#byDigest.has(id)) return false;
    this.#byDigest.set(id, client);
    return true;
  }

  get size(): number {
    return this.#byDigest.size;
  }

  lookup(presented: string): ResolvedClient | undefined {
    return this.#byDigest.get(digest(presented));
  }
}
