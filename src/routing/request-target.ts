/** A request target split at its first `?`: the path, and the query (`undefined` when there is no `?`). */
export function splitRequestTarget(target: string): { path: string; query: string | undefined } {
  const at = target.indexOf('?');
  return at === -1
    ? { path: target, query: undefined }
    : { path: target.slice(0, at), query: target.slice(at + 1) };
}
