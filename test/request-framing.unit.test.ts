/**
 * How a request's body is delimited and written upstream (src/proxy/request-framing.ts), with
 * message-like objects made by hand: no sockets, no parser. What travels over real connections,
 * through Node's parser and a pooled upstream, is in request-framing*.test.ts.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { announcesBody, framingOf, writeBody, type RequestFraming } from '../src/proxy/request-framing.js';

/**
 * An IncomingMessage as far as framing looks: `rawHeaders` as received (every repetition), and
 * `headers` as Node builds them (lower-case names, the first of repeated framing headers kept).
 */
function message(rawHeaders: string[], httpVersion = '1.1'): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
  }
  return { headers, rawHeaders, httpVersion } as unknown as IncomingMessage;
}

describe('framingOf', () => {
  const cases: ReadonlyArray<readonly [label: string, raw: string[], expected: RequestFraming | undefined]> =
    [
      ['no framing header: no body', ['Host', 'x'], { kind: 'none' }],
      ['a Content-Length', ['Content-Length', '5'], { kind: 'length', length: 5 }],
      ['Content-Length: 0', ['Content-Length', '0'], { kind: 'length', length: 0 }],
      [
        'a Content-Length with surrounding whitespace',
        ['content-length', ' 12 '],
        { kind: 'length', length: 12 },
      ],
      ['a Content-Length with leading zeros', ['Content-Length', '007'], { kind: 'length', length: 7 }],
      ['an upper-case header name', ['CONTENT-LENGTH', '3'], { kind: 'length', length: 3 }],
      [
        'the largest safe length',
        ['Content-Length', '9007199254740991'],
        { kind: 'length', length: 2 ** 53 - 1 },
      ],
      ['Transfer-Encoding: chunked', ['Transfer-Encoding', 'chunked'], { kind: 'chunked' }],
      ['chunked in any case, with whitespace', ['transfer-encoding', ' Chunked '], { kind: 'chunked' }],
      ['a negative length', ['Content-Length', '-1'], undefined],
      ['a fractional length', ['Content-Length', '1.5'], undefined],
      ['a length in hex', ['Content-Length', '0x10'], undefined],
      ['an empty length', ['Content-Length', ''], undefined],
      ['a list of lengths', ['Content-Length', '5, 5'], undefined],
      ['a repeated Content-Length, even equal', ['Content-Length', '5', 'Content-Length', '5'], undefined],
      ['a length past the safe integers', ['Content-Length', '9007199254740993'], undefined],
      [
        'both Content-Length and Transfer-Encoding',
        ['Content-Length', '5', 'Transfer-Encoding', 'chunked'],
        undefined,
      ],
      [
        'Transfer-Encoding before Content-Length',
        ['Transfer-Encoding', 'chunked', 'Content-Length', '5'],
        undefined,
      ],
      ['a coding other than chunked', ['Transfer-Encoding', 'gzip'], undefined],
      ['chunked after another coding', ['Transfer-Encoding', 'gzip, chunked'], undefined],
      ['identity', ['Transfer-Encoding', 'identity'], undefined],
      [
        'a repeated Transfer-Encoding',
        ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'],
        undefined,
      ],
    ];
  for (const [label, raw, expected] of cases) {
    it(`${label}: ${expected ? JSON.stringify(expected) : 'refused'}`, () => {
      assert.deepEqual(framingOf(message(raw)), expected);
    });
  }

  it('chunked framing on HTTP/1.0 is refused; a length there is fine', () => {
    assert.equal(framingOf(message(['Transfer-Encoding', 'chunked'], '1.0')), undefined);
    assert.deepEqual(framingOf(message(['Content-Length', '2'], '1.0')), { kind: 'length', length: 2 });
  });

  it('decides from the raw headers, not from what was merged into req.headers', () => {
    // `headers` shows one value; the wire carried two different lengths.
    const req = {
      headers: { 'content-length': '5' },
      rawHeaders: ['Content-Length', '5', 'content-length', '6'],
      httpVersion: '1.1',
    } as unknown as IncomingMessage;
    assert.equal(framingOf(req), undefined);
  });
});

describe('announcesBody (for upgrade requests, which never have one)', () => {
  it('no framing header, or a zero length, announces none', () => {
    assert.equal(announcesBody(message(['Host', 'x'])), false);
    assert.equal(announcesBody(message(['Content-Length', '0'])), false);
    assert.equal(announcesBody(message(['Content-Length', ' 0 '])), false);
  });

  it('any Transfer-Encoding, or any other length, announces one', () => {
    assert.equal(announcesBody(message(['Transfer-Encoding', 'chunked'])), true);
    assert.equal(announcesBody(message(['Transfer-Encoding', 'identity'])), true);
    assert.equal(announcesBody(message(['Content-Length', '1'])), true);
    assert.equal(announcesBody(message(['Content-Length', '00'])), true);
    assert.equal(announcesBody(message(['Content-Length', 'x'])), true);
  });
});

/** The parts of a ClientRequest that writeBody uses, recording what was done to it. */
class FakeUpstreamRequest extends EventEmitter {
  readonly headers = new Map<string, string | number>([
    ['content-length', '0'],
    ['transfer-encoding', 'chunked'],
  ]);
  readonly written: Buffer[] = [];
  ended: Buffer | undefined | false = false;
  destroyed = false;
  destroyError: Error | undefined;
  strictContentLength = false;
  /** What the next write returns (false: the socket buffer is full). */
  writeReturns = true;
  /** Makes `end` throw, as Node does when the bytes sent do not match Content-Length. */
  endThrows: Error | undefined;

  setHeader(name: string, value: string | number): void {
    this.headers.set(name, value);
  }
  removeHeader(name: string): void {
    this.headers.delete(name);
  }
  corked = false;
  cork(): void {
    this.corked = true;
  }
  write(chunk: Buffer): boolean {
    this.written.push(chunk);
    return this.writeReturns;
  }
  end(chunk?: Buffer): void {
    if (this.endThrows) throw this.endThrows;
    this.ended = chunk;
  }
  /** As Node does: `destroyed` at once, `close` on a later tick. */
  destroy(error?: Error): void {
    this.destroyed = true;
    this.destroyError = error;
    process.nextTick(() => this.emit('close'));
  }
  asClientRequest(): ClientRequest {
    return this as unknown as ClientRequest;
  }
}

/** A client's body stream; `complete` as IncomingMessage sets it once the whole body was read. */
function clientBody(): PassThrough & { complete: boolean } {
  const source = new PassThrough() as PassThrough & { complete: boolean };
  source.complete = false;
  source.once('end', () => (source.complete = true));
  return source;
}

const ended = (source: PassThrough) => once(source, 'end');
/** Writes `text` into the client's body and resolves once writeBody has been handed it. */
async function flowed(source: PassThrough, text: string): Promise<void> {
  const delivered = once(source, 'data');
  source.write(text);
  await delivered;
}

describe('writeBody', () => {
  it('no body: no framing headers, an empty end, and a strict length', () => {
    const upstream = new FakeUpstreamRequest();
    writeBody(upstream.asClientRequest(), { kind: 'none' });
    assert.deepEqual([...upstream.headers], []);
    assert.equal(upstream.ended, undefined);
    assert.equal(upstream.strictContentLength, true);
  });

  it('held bytes: their own Content-Length, sent in one end', () => {
    const upstream = new FakeUpstreamRequest();
    const bytes = Buffer.from('{"a":1}');
    writeBody(upstream.asClientRequest(), { kind: 'bytes', chunks: [bytes] });
    assert.deepEqual([...upstream.headers], [['content-length', bytes.length]]);
    assert.equal(upstream.ended, bytes);
    assert.equal(upstream.strictContentLength, true);
  });

  it('held bytes in pieces: one Content-Length for them all, written in order without being joined', () => {
    const upstream = new FakeUpstreamRequest();
    const pieces = ['{"model":', '"claude-sonnet-4"', ',"n":1}'].map((text) => Buffer.from(text));
    writeBody(upstream.asClientRequest(), { kind: 'bytes', chunks: pieces });
    assert.deepEqual([...upstream.headers], [['content-length', 33]]);
    assert.deepEqual(upstream.written, pieces.slice(0, 2));
    assert.equal(upstream.written[0], pieces[0]);
    assert.equal(upstream.ended, pieces[2]);
    assert.equal(upstream.corked, true);
  });

  it("the client's stream under its length: every byte written, then ended", async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'length', length: 10 },
    });
    assert.deepEqual([...upstream.headers], [['content-length', 10]]);
    source.write('hello');
    source.end('world');
    await ended(source);
    assert.equal(Buffer.concat(upstream.written).toString(), 'helloworld');
    assert.equal(upstream.ended, undefined);
    assert.equal(upstream.destroyed, false);
  });

  it("the client's chunked stream: chunked upstream too, ended when the client's ends", async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'chunked' },
    });
    assert.deepEqual([...upstream.headers], [['transfer-encoding', 'chunked']]);
    source.end(Buffer.alloc(100_000));
    await ended(source);
    assert.equal(Buffer.concat(upstream.written).length, 100_000);
    assert.equal(upstream.ended, undefined);
  });

  it('a stream longer than announced destroys the upstream request instead of writing past it', async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'length', length: 3 },
    });
    source.end('too long');
    await ended(source);
    assert.equal(upstream.destroyed, true);
    assert.match(String(upstream.destroyError), /longer than its announced length/);
    assert.deepEqual(upstream.written, []);
    assert.equal(upstream.ended, false);
  });

  it('a stream shorter than announced destroys the upstream request instead of ending it', async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'length', length: 10 },
    });
    source.end('short');
    await ended(source);
    assert.equal(upstream.destroyed, true);
    assert.match(String(upstream.destroyError), /shorter than its announced length/);
    assert.equal(upstream.ended, false);
  });

  it('a client gone mid-body destroys the upstream request', async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'length', length: 10 },
    });
    await flowed(source, 'part');
    source.destroy();
    await once(source, 'close');
    assert.equal(upstream.destroyed, true);
    assert.equal(upstream.ended, false);
  });

  it('a full upstream buffer pauses the client until it drains', async () => {
    const upstream = new FakeUpstreamRequest();
    upstream.writeReturns = false;
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'chunked' },
    });
    await flowed(source, 'first');
    assert.equal(source.isPaused(), true);
    upstream.writeReturns = true;
    upstream.emit('drain');
    assert.equal(source.isPaused(), false);
    source.end('second');
    await ended(source);
    assert.equal(Buffer.concat(upstream.written).toString(), 'firstsecond');
  });

  it('nothing more is written once the upstream request is gone', async () => {
    const upstream = new FakeUpstreamRequest();
    const source = clientBody();
    writeBody(upstream.asClientRequest(), {
      kind: 'stream',
      source: source as unknown as IncomingMessage,
      framing: { kind: 'chunked' },
    });
    await flowed(source, 'before');
    upstream.destroy();
    // Between destroy and its close event, data still arrives: it is not written.
    await flowed(source, 'between');
    await once(upstream, 'close');
    assert.equal(source.listenerCount('data'), 0, 'the data listener is removed on close');
    source.end('after');
    await ended(source);
    assert.equal(Buffer.concat(upstream.written).toString(), 'before');
    assert.equal(upstream.ended, false, 'a destroyed request is not ended');
  });

  it('an end that Node refuses (a length mismatch) destroys the request with that error', () => {
    const upstream = new FakeUpstreamRequest();
    upstream.endThrows = new Error('ERR_HTTP_CONTENT_LENGTH_MISMATCH');
    writeBody(upstream.asClientRequest(), { kind: 'bytes', chunks: [Buffer.from('x')] });
    assert.equal(upstream.destroyed, true);
    assert.equal(upstream.destroyError, upstream.endThrows);
  });
});
