/** A request target split at its first `?`: the path, and the query (`undefined` when there is no `?`). */
export function splitRequestTarget(target: string): { path: string; query: string | undefined } {
  const at = target.indexOf('?');
  return at === -1
    ? { path: target, query: undefined }
    : { path: target.slice(0, at), query: target.slice(at + 1) };
}

const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i;

/**
 * A request target in origin form (`/path?query`). One in absolute form (`http://host/path`) is
 * what a client sends its forward proxy, and what reaches us when that proxy passes it on
 * unrewritten; servers must accept it (RFC 9112 §3.2.2) and Express routes it by its path. Its
 * authority is dropped, as Express drops it (the Host header names the host). One with userinfo
 * is left as it came, no path of ours: dropping it would drop a credential unseen.
 */
export function originForm(target: string): string {
  if (target.startsWith('/')) return target;
  const authority = ABSOLUTE_FORM.exec(target)?.[0];
  if (authority === undefined || authority.includes('@')) return target;
  const rest = target.slice(authority.length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
