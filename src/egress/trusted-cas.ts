import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { rootCertificates } from 'node:tls';
import { X509Certificate } from 'node:crypto';

/** `upstreamCa` once validated: its certificates, and where they came from in words. */
export interface UpstreamCa {
  readonly certificates: readonly string[];
  readonly origin: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** The certificates of a PEM text; `undefined` when a block is not a certificate or there is none. */
export function pemCertificates(pem: string): string[] | undefined {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return undefined;
  try {
    for (const block of blocks) new X509Certificate(block);
  } catch {
    return undefined;
  }
  return blocks;
}

/**
 * What a process trusts by default besides Node's roots: `NODE_EXTRA_CA_CERTS`, read by Node at
 * start-up. Passing `ca` replaces the defaults, so the bundle restates them.
 */
function extraCertificatesOfProcess(): string[] {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  try {
    return pemCertificates(readFileSync(file, 'utf8')) ?? [];
  } catch {
    // Node has already warned about an unreadable file at start-up.
    return [];
  }
}

/** One line, no spaces, with a folder separator or a certificate file's extension. */
function looksLikePath(text: string): boolean {
  return /^[^\s]+$/.test(text.trim()) && /[/\\]|\.(pem|crt|cer|ca-bundle)$/i.test(text.trim());
}

/** Reads `{ file }` (relative to the working directory); a PEM text is taken as it is. */
export function readUpstreamCa(value: string | { readonly file: string }): UpstreamCa | { problem: string } {
  let pem = value;
  let origin = 'upstreamCa';
  if (typeof value !== 'string') {
    const path = resolvePath(value.file);
    try {
      pem = readFileSync(path, 'utf8');
    } catch (error) {
      return { problem: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
    }
    origin = path;
  }
  const certificates = pemCertificates(pem as string);
  if (!certificates) {
    return {
      problem: `expected PEM certificates ("-----BEGIN CERTIFICATE-----…"), ${typeof value === 'string' ? `got text without one${looksLikePath(value) ? '; a file path? Write upstreamCa: { file: "..." }' : ''}` : `${origin} holds none`}`,
    };
  }
  return { certificates, origin };
}

/**
 * For `--print-config` and the reload log: each certificate's subject and the start of its
 * SHA-256 fingerprint, so that a replaced certificate shows as a change.
 */
export function describeUpstreamCa({ certificates, origin }: UpstreamCa): string {
  const shown = certificates.map((pem) => {
    const certificate = new X509Certificate(pem);
    const commonName = /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? certificate.subject.split('\n')[0];
    return `${commonName} (${certificate.fingerprint256.slice(0, 11)})`;
  });
  const count = `${certificates.length} certificate${certificates.length === 1 ? '' : 's'}`;
  return `${count} from ${origin}: ${shown.join(', ')}`;
}

/** The CAs a connection to the upstream trusts: Node's roots, `NODE_EXTRA_CA_CERTS` and `upstreamCa`. */
export function upstreamTrustBundle(ca: UpstreamCa): string[] {
  return [...rootCertificates, ...extraCertificatesOfProcess(), ...ca.certificates];
}
