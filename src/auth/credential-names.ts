/**
 * The one vocabulary of credential names: where the gateway reads credentials from, and which
 * names are taken to hold a secret when a request is logged. Credentials, header building,
 * option validation and redaction all use these lists, so they cannot disagree.
 */

/** Headers a client presents its credential in; a gateway key found here is the caller's own. */
export const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'x-goog-api-key'] as const;
export type CredentialHeader = (typeof CREDENTIAL_HEADERS)[number];

/** Query parameters read as the user's own credential (Google-style `?key=`, Amp's `?auth_token=`). */
export const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(['key', 'auth_token']);

/**
 * The redaction rule: a header or query parameter whose lower-case name contains one of these
 * parts holds a secret. Broad on purpose: masking a harmless value costs a log reader one detail,
 * missing a secret costs the secret (`auth` covers `authorization`, `authToken`, `oauth_…`;
 * `passw` covers `password` and `passwd`).
 */
const SECRET_NAME_PARTS = ['key', 'token', 'auth', 'secret', 'passw', 'signature', 'credential', 'session'];
/** Secrets whose names contain none of those parts (OAuth's device and PKCE codes among them). */
const SECRET_NAMES: ReadonlySet<string> = new Set([
  'x-rivet-conn-params',
  'sig',
  'code',
  'device_code',
  'user_code',
  'code_verifier',
  'pwd',
  'jwt',
]);
/** Names the rule matches that never hold a secret: Rivet's actor key is the thread id, kept for logs. */
const PUBLIC_NAMES: ReadonlySet<string> = new Set(['rvt-key']);

/** Whether a header or query parameter of this lower-case name is masked in logs and events. */
export function isSecretName(name: string): boolean {
  if (SECRET_NAMES.has(name)) return true;
  if (PUBLIC_NAMES.has(name)) return false;
  for (const part of SECRET_NAME_PARTS) if (name.includes(part)) return true;
  return false;
}
