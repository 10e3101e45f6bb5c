/**
 * A small, strict HTTP/1.1 message parser (RFC 9112) for the framing tests. It reads raw bytes as
 * an upstream server would, without Node's parser, so that a test sees exactly how a byte stream
 * splits into messages: where one request ends decides where the next one begins.
 *
 * Strictness is deliberate: anything an intermediary should never send upstream (both
 * `Content-Length` and `Transfer-Encoding`, repeated or list-valued `Content-Length`, a transfer
 * coding list that does not end in a single `chunked`, obs-fold, bare CR or LF, a missing or
 * repeated `Host`) is a framing error here, even where a lenient server would guess.
 */

export type HeaderField = readonly [name: string, value: string];

export type Framing = 'content-length' | 'chunked' | 'none';

export interface RawRequestHead {
  readonly method: string;
  readonly target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /** The header fields in the order received, names as sent. */
  readonly headers: readonly HeaderField[];
}

export interface RawRequest extends RawRequestHead {
  readonly framing: Framing;
  /** The message body, chunked framing removed (transfer codings other than chunked are kept). */
  readonly body: Buffer;
  readonly trailers: readonly HeaderField[];
  /** The exact bytes of the whole message on the wire. */
  readonly raw: Buffer;
}

export interface RawResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  readonly headers: readonly HeaderField[];
  readonly body: Buffer;
  /** The exact bytes of the whole message on the wire, as latin1 text. */
  readonly raw: string;
}

/** One step of parsing a byte stream from an offset. */
export type ParseStep<T> =
  | { readonly kind: 'complete'; readonly message: T; readonly end: number }
  /** More bytes are needed; `head` is set once the head is complete. */
  | { readonly kind: 'incomplete'; readonly head?: RawRequestHead }
  | { readonly kind: 'error'; readonly reason: string };

/** What a byte stream parses into, from its first byte. */
export interface ParsedStream {
  readonly requests: readonly RawRequest[];
  /** Bytes after the last complete message: an incomplete message, or bytes that do not parse. */
  readonly leftover: Buffer;
  /** Why parsing stopped before the end of the bytes, when it stopped on bytes that do not parse. */
  readonly error?: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^[\x21-\x7e]+$/;
/** Control characters other than HTAB, which a field value may not hold. */
const hasControl = (value: string): boolean =>
  [...value].some((c) => (c.charCodeAt(0) < 0x20 && c !== '\t') || c.charCodeAt(0) === 0x7f);
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;

/** Every value of the header fields named `name`, in order (case-insensitive). */
export function headerValues(message: { readonly headers: readonly HeaderField[] }, name: string): string[] {
  const wanted = name.toLowerCase();
  return message.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
}

/** The value of the header `name`, or `undefined`; several fields are joined with `, ` as Node does. */
export function headerValue(
  message: { readonly headers: readonly HeaderField[] },
  name: string,
): string | undefined {
  const values = headerValues(message, name);
  return values.length === 0 ? undefined : values.join(', ');
}

type FieldsResult = { ok: true; fields: HeaderField[] } | { ok: false; reason: string };

function parseFieldLines(lines: readonly string[]): FieldsResult {
  const fields: HeaderField[] = [];
  for (const line of lines) {
    if (line.includes('\r') || line.includes('\n'))
      return { ok: false, reason: 'bare CR or LF in a header line' };
    if (line.startsWith(' ') || line.startsWith('\t')) {
      return {
        ok: false,
        reason: `obs-fold (a header line continued on the next line): ${JSON.stringify(line)}`,
      };
    }
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon);
    if (!TOKEN.test(name)) return { ok: false, reason: `invalid header line ${JSON.stringify(line)}` };
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (hasControl(value)) return { ok: false, reason: `control character in header ${name}` };
    fields.push([name, value]);
  }
  return { ok: true, fields };
}

type HeadResult =
  | { kind: 'incomplete' }
  | { kind: 'error'; reason: string }
  | { kind: 'head'; startLine: string; fields: HeaderField[]; bodyStart: number };

function parseHead(bytes: Buffer, start: number): HeadResult {
  const end = bytes.indexOf('\r\n\r\n', start, 'latin1');
  if (end === -1) {
    if (bytes.length - start > MAX_HEAD_BYTES) return { kind: 'error', reason: 'head larger than 64 KiB' };
    // A start line that is already complete and wrong is an error now, not "more bytes needed".
    const lineEnd = bytes.indexOf('\r\n', start, 'latin1');
    if (lineEnd !== -1 && lineEnd === start)
      return { kind: 'error', reason: 'empty line before the start line' };
    return { kind: 'incomplete' };
  }
  if (end === start) return { kind: 'error', reason: 'empty line before the start line' };
  const lines = bytes.toString('latin1', start, end).split('\r\n');
  const startLine = lines[0]!;
  if (startLine.includes('\r') || startLine.includes('\n')) {
    return { kind: 'error', reason: `bare CR or LF in the start line ${JSON.stringify(startLine)}` };
  }
  const fields = parseFieldLines(lines.slice(1));
  if (!fields.ok) return { kind: 'error', reason: fields.reason };
  return { kind: 'head', startLine, fields: fields.fields, bodyStart: end + 4 };
}

type ChunkedResult =
  | { kind: 'incomplete' }
  | { kind: 'error'; reason: string }
  | { kind: 'complete'; body: Buffer; trailers: HeaderField[]; end: number };

/** Decodes a chunked body (RFC 9112 §7.1) starting at `start`, trailers included. */
function parseChunked(bytes: Buffer, start: number): ChunkedResult {
  const chunks: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at, 'latin1');
    if (lineEnd === -1) {
      return bytes.length - at > MAX_CHUNK_LINE
        ? { kind: 'error', reason: 'chunk-size line too long' }
        : { kind: 'incomplete' };
    }
    const line = bytes.toString('latin1', at, lineEnd);
    const match = /^([0-9A-Fa-f]{1,8})(?:[ \t]*;[^\r\n]*)?$/.exec(line);
    if (!match) return { kind: 'error', reason: `invalid chunk-size line ${JSON.stringify(line)}` };
    const size = Number.parseInt(match[1]!, 16);
    at = lineEnd + 2;
    if (size === 0) break;
    if (bytes.length < at + size + 2) return { kind: 'incomplete' };
    chunks.push(bytes.subarray(at, at + size));
    if (bytes.toString('latin1', at + size, at + size + 2) !== '\r\n') {
      return { kind: 'error', reason: 'chunk data not followed by CRLF' };
    }
    at += size + 2;
  }
  // The trailer section: field lines up to an empty line.
  const trailerLines: string[] = [];
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at, 'latin1');
    if (lineEnd === -1) {
      return bytes.length - at > MAX_HEAD_BYTES
        ? { kind: 'error', reason: 'trailer section too long' }
        : { kind: 'incomplete' };
    }
    const line = bytes.toString('latin1', at, lineEnd);
    at = lineEnd + 2;
    if (line === '') break;
    trailerLines.push(line);
  }
  const trailers = parseFieldLines(trailerLines);
  if (!trailers.ok) return { kind: 'error', reason: `in the trailers: ${trailers.reason}` };
  return { kind: 'complete', body: Buffer.concat(chunks), trailers: trailers.fields, end: at };
}

type BodyFraming =
  | { kind: 'error'; reason: string }
  | { kind: 'none' }
  | { kind: 'content-length'; length: number }
  | { kind: 'chunked' };

/** How long the body of a request is (RFC 9112 §6.3), refusing every ambiguous case. */
function requestFraming(head: RawRequestHead): BodyFraming {
  const transferEncodings = headerValues(head, 'transfer-encoding');
  const contentLengths = headerValues(head, 'content-length');
  if (transferEncodings.length > 0 && contentLengths.length > 0) {
    return { kind: 'error', reason: 'both Transfer-Encoding and Content-Length' };
  }
  if (transferEncodings.length > 0) {
    if (head.version === 'HTTP/1.0')
      return { kind: 'error', reason: 'Transfer-Encoding in an HTTP/1.0 request' };
    const codings = transferEncodings
      .join(',')
      .split(',')
      .map((coding) => coding.trim().toLowerCase());
    if (codings.some((coding) => !TOKEN.test(coding))) {
      return { kind: 'error', reason: `invalid Transfer-Encoding ${JSON.stringify(transferEncodings)}` };
    }
    if (codings.at(-1) !== 'chunked') {
      return {
        kind: 'error',
        reason: `Transfer-Encoding does not end in chunked: ${JSON.stringify(transferEncodings)}`,
      };
    }
    if (codings.filter((coding) => coding === 'chunked').length > 1) {
      return {
        kind: 'error',
        reason: `chunked applied more than once: ${JSON.stringify(transferEncodings)}`,
      };
    }
    return { kind: 'chunked' };
  }
  if (contentLengths.length > 1) {
    return { kind: 'error', reason: `several Content-Length fields: ${JSON.stringify(contentLengths)}` };
  }
  if (contentLengths.length === 1) {
    const value = contentLengths[0]!;
    if (!/^\d{1,15}$/.test(value))
      return { kind: 'error', reason: `invalid Content-Length ${JSON.stringify(value)}` };
    return { kind: 'content-length', length: Number(value) };
  }
  return { kind: 'none' };
}

/** Parses one request starting at `start`. */
export function parseRequest(bytes: Buffer, start = 0): ParseStep<RawRequest> {
  const parsed = parseHead(bytes, start);
  if (parsed.kind !== 'head') return parsed;
  const requestLine = /^([^ ]+) ([^ ]+) (HTTP\/1\.[01])$/.exec(parsed.startLine);
  if (!requestLine || !TOKEN.test(requestLine[1]!) || !TARGET.test(requestLine[2]!)) {
    return { kind: 'error', reason: `invalid request line ${JSON.stringify(parsed.startLine)}` };
  }
  const head: RawRequestHead = {
    method: requestLine[1]!,
    target: requestLine[2]!,
    version: requestLine[3]!,
    headers: parsed.fields,
  };
  const hosts = headerValues(head, 'host');
  if (head.version === 'HTTP/1.1' && hosts.length !== 1) {
    return { kind: 'error', reason: `HTTP/1.1 request with ${hosts.length} Host fields` };
  }
  const framing = requestFraming(head);
  if (framing.kind === 'error') return framing;
  const bodyStart = parsed.bodyStart;
  const complete = (body: Buffer, end: number, trailers: HeaderField[] = []): ParseStep<RawRequest> => ({
    kind: 'complete',
    message: {
      ...head,
      framing: framing.kind,
      body: Buffer.from(body),
      trailers,
      raw: Buffer.from(bytes.subarray(start, end)),
    },
    end,
  });
  switch (framing.kind) {
    case 'none':
      return complete(Buffer.alloc(0), bodyStart);
    case 'content-length': {
      const end = bodyStart + framing.length;
      if (bytes.length < end) return { kind: 'incomplete', head };
      return complete(bytes.subarray(bodyStart, end), end);
    }
    case 'chunked': {
      const chunked = parseChunked(bytes, bodyStart);
      if (chunked.kind === 'incomplete') return { kind: 'incomplete', head };
      if (chunked.kind === 'error') return chunked;
      return complete(chunked.body, chunked.end, chunked.trailers);
    }
  }
}

/** Parses a whole byte stream into requests, from its first byte. */
export function parseRequestStream(bytes: Buffer): ParsedStream {
  const requests: RawRequest[] = [];
  let at = 0;
  while (at < bytes.length) {
    const step = parseRequest(bytes, at);
    if (step.kind === 'complete') {
      requests.push(step.message);
      at = step.end;
      continue;
    }
    return {
      requests,
      leftover: Buffer.from(bytes.subarray(at)),
      ...(step.kind === 'error' ? { error: step.reason } : {}),
    };
  }
  return { requests, leftover: Buffer.alloc(0) };
}

/**
 * Parses one response starting at `start`. `requestMethod` decides whether a body follows
 * (none after `HEAD`); `closed` says the connection has ended, which completes a body that is
 * delimited by the close.
 */
export function parseResponse(
  bytes: Buffer,
  start: number,
  { requestMethod = 'GET', closed = false }: { requestMethod?: string; closed?: boolean } = {},
): ParseStep<RawResponse> {
  const parsed = parseHead(bytes, start);
  if (parsed.kind !== 'head') return parsed;
  const statusLine = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/.exec(parsed.startLine);
  if (!statusLine)
    return { kind: 'error', reason: `invalid status line ${JSON.stringify(parsed.startLine)}` };
  const status = Number(statusLine[2]);
  const headers = parsed.fields;
  const bodyStart = parsed.bodyStart;
  const complete = (body: Buffer, end: number): ParseStep<RawResponse> => ({
    kind: 'complete',
    message: {
      version: statusLine[1]!,
      status,
      reason: statusLine[3] ?? '',
      headers,
      body: Buffer.from(body),
      raw: bytes.toString('latin1', start, end),
    },
    end,
  });
  if (requestMethod === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return complete(Buffer.alloc(0), bodyStart);
  }
  const message = { headers };
  const transferEncoding = headerValue(message, 'transfer-encoding');
  if (transferEncoding !== undefined && /(?:^|,)\s*chunked\s*$/i.test(transferEncoding)) {
    const chunked = parseChunked(bytes, bodyStart);
    if (chunked.kind === 'complete') return complete(chunked.body, chunked.end);
    return chunked.kind === 'error' ? chunked : { kind: 'incomplete' };
  }
  const contentLengths = headerValues(message, 'content-length');
  if (transferEncoding === undefined && contentLengths.length > 0) {
    if (new Set(contentLengths).size !== 1 || !/^\d{1,15}$/.test(contentLengths[0]!)) {
      return {
        kind: 'error',
        reason: `invalid Content-Length in a response: ${JSON.stringify(contentLengths)}`,
      };
    }
    const end = bodyStart + Number(contentLengths[0]);
    return bytes.length < end ? { kind: 'incomplete' } : complete(bytes.subarray(bodyStart, end), end);
  }
  // Delimited by the end of the connection.
  return closed ? complete(bytes.subarray(bodyStart), bytes.length) : { kind: 'incomplete' };
}

/** Builds the bytes of a chunked body: one chunk per part, then the last chunk and trailers. */
export function chunked(parts: readonly string[], trailers = ''): string {
  return (
    parts.map((part) => `${Buffer.byteLength(part, 'latin1').toString(16)}\r\n${part}\r\n`).join('') +
    `0\r\n${trailers}\r\n`
  );
}
