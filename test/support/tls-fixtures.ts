import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';

/** A certificate and its private key, both PEM. */
export interface KeyAndCert {
  key: string;
  cert: string;
}

/**
 * A test certificate authority and leaf certificates, made once per process (EC P-256, SHA-256:
 * quick to make). Every leaf except `selfSigned` and `otherCaLeaf` is signed by `ca`.
 */
export interface TlsFixtures {
  /** The test CA that tests trust through `upstreamCa`. */
  ca: KeyAndCert;
  /** A second CA, unrelated to `ca`: trusting it must not make `ca`'s leaves trusted. */
  otherCa: KeyAndCert;
  /** Valid now, for DNS `localhost` and IPs `127.0.0.1` and `::1`. */
  leaf: KeyAndCert;
  /** Like `leaf`, but it expired a year ago. */
  expired: KeyAndCert;
  /** Valid now, but only for `wrong.example`: no `localhost`, no IP. */
  wrongName: KeyAndCert;
  /** For `localhost` and `127.0.0.1`, signed by its own key: no CA vouches for it. */
  selfSigned: KeyAndCert;
  /** For `localhost` and `127.0.0.1`, signed by `otherCa`. */
  otherCaLeaf: KeyAndCert;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const BASE = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' } as const;

type Extensions = NonNullable<NonNullable<Parameters<typeof generate>[1]>['extensions']>;
type AltName = Extract<Extensions[number], { name: 'subjectAltName' }>['altNames'][number];

const LOCAL_NAMES: AltName[] = [
  { type: 2, value: 'localhost' },
  { type: 7, ip: '127.0.0.1' },
  { type: 7, ip: '::1' },
];

function serverExtensions(altNames: AltName[]): Extensions {
  return [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ];
}

async function makeCa(commonName: string): Promise<KeyAndCert> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    ...BASE,
    notBeforeDate: new Date(Date.now() - DAY_MS),
    notAfterDate: new Date(Date.now() + 365 * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return pemPair(pems);
}

/** PEM text ending in a newline, so that certificates can be concatenated into a bundle or chain. */
function pemPair(pems: { private: string; cert: string }): KeyAndCert {
  const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
  return { key: line(pems.private), cert: line(pems.cert) };
}

async function makeLeaf(
  commonName: string,
  altNames: AltName[],
  signer: KeyAndCert | undefined,
  { notBefore = new Date(Date.now() - DAY_MS), notAfter = new Date(Date.now() + 30 * DAY_MS) } = {},
): Promise<KeyAndCert> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    ...BASE,
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: serverExtensions(altNames),
    ...(signer ? { ca: signer } : {}),
  });
  return pemPair(pems);
}

async function makeFixtures(): Promise<TlsFixtures> {
  const [ca, otherCa] = await Promise.all([makeCa('amp-proxy test CA'), makeCa('unrelated test CA')]);
  const [leaf, expired, wrongName, selfSigned, otherCaLeaf] = await Promise.all([
    makeLeaf('localhost', LOCAL_NAMES, ca),
    makeLeaf('localhost', LOCAL_NAMES, ca, {
      notBefore: new Date(Date.now() - 400 * DAY_MS),
      notAfter: new Date(Date.now() - 35 * DAY_MS),
    }),
    makeLeaf('wrong.example', [{ type: 2, value: 'wrong.example' }], ca),
    makeLeaf('localhost', LOCAL_NAMES, undefined),
    makeLeaf('localhost', LOCAL_NAMES, otherCa),
  ]);
  const fixtures = { ca, otherCa, leaf, expired, wrongName, selfSigned, otherCaLeaf };
  checkFixtures(fixtures);
  return fixtures;
}

/** The fixtures are what their names say, or every test built on them would prove nothing. */
function checkFixtures(f: TlsFixtures): void {
  const x = (pem: KeyAndCert) => new X509Certificate(pem.cert);
  const ca = x(f.ca);
  const otherCa = x(f.otherCa);
  const fail = (what: string): never => {
    throw new Error(`tls-fixtures: ${what}`);
  };
  if (!ca.ca || !otherCa.ca) fail('the CAs are not CA certificates');
  for (const name of ['leaf', 'expired', 'wrongName'] as const) {
    if (!x(f[name]).verify(ca.publicKey)) fail(`${name} is not signed by the test CA`);
    if (x(f[name]).ca) fail(`${name} is a CA certificate`);
  }
  if (!x(f.otherCaLeaf).verify(otherCa.publicKey)) fail('otherCaLeaf is not signed by the other CA');
  if (x(f.otherCaLeaf).verify(ca.publicKey)) fail('otherCaLeaf verifies with the test CA');
  if (!x(f.selfSigned).verify(x(f.selfSigned).publicKey)) fail('selfSigned is not self-signed');
  if (x(f.leaf).checkHost('localhost') !== 'localhost' || x(f.leaf).checkIP('127.0.0.1') !== '127.0.0.1') {
    fail('leaf is not for localhost and 127.0.0.1');
  }
  if (x(f.wrongName).checkHost('localhost') !== undefined || x(f.wrongName).checkIP('127.0.0.1')) {
    fail('wrongName matches localhost');
  }
  if (new Date(x(f.expired).validTo).getTime() >= Date.now()) fail('expired has not expired');
  if (new Date(x(f.leaf).validFrom).getTime() > Date.now()) fail('leaf is not valid yet');
}

let fixtures: Promise<TlsFixtures> | undefined;

/** The process's TLS fixtures, made on first use. */
export function tlsFixtures(): Promise<TlsFixtures> {
  fixtures ??= makeFixtures();
  return fixtures;
}
