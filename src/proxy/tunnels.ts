import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** The upstream end of each tunnel, so that shutdown can close a tunnel cleanly. */
const upstreamSockets = new WeakMap<Duplex, Socket>();
/** A server-to-client WebSocket close frame with status 1001, "going away". */
const GOING_AWAY_FRAME = Buffer.from([0x88, 0x02, 0x03, 0xe9]);
const TUNNEL_CLOSE_GRACE_MS = 1000;

/** Records the upstream end of the tunnel whose client end is `socket` (the upstream answered 101). */
export function tunnelOpened(socket: Duplex, upstream: Socket): void {
  upstreamSockets.set(socket, upstream);
}

/** Whether the upstream answered `socket`'s upgrade with 101: an HTTP answer would now land inside the stream. */
export function isTunnelOpen(socket: Duplex): boolean {
  return upstreamSockets.has(socket);
}

/** Closes the upstream end of `socket`'s tunnel, if it has one. */
export function destroyUpstreamOf(socket: Duplex): void {
  upstreamSockets.get(socket)?.destroy();
}

/** The same close frame as a client sends it: masked (RFC 6455 §5.3), with a fresh mask. */
function maskedGoingAwayFrame(): Buffer {
  const mask = randomBytes(4);
  return Buffer.from([0x88, 0x82, ...mask, 0x03 ^ mask[0]!, 0xe9 ^ mask[1]!]);
}

/**
 * Ends a WebSocket tunnel with close code 1001 on both sides: the two are detached first, so a
 * close frame cannot land inside a frame the other side was still sending. Resolves once the
 * client's side is closed, so that its close is logged and counted before a shutdown is over.
 */
export function endTunnel(socket: Duplex): Promise<void> {
  const closed = socket.destroyed
    ? Promise.resolve()
    : new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const upstream = upstreamSockets.get(socket);
  if (upstream) {
    upstream.unpipe(socket);
    socket.unpipe(upstream);
    // The upstream sees a client going away (1001), not a dropped connection (1006).
    upstream.on('error', () => upstream.destroy());
    upstream.resume();
    upstream.end(maskedGoingAwayFrame());
    setTimeout(() => upstream.destroy(), TUNNEL_CLOSE_GRACE_MS).unref();
  }
  // Keep reading, so the client's closing handshake and hang-up are seen and the socket closes.
  socket.resume();
  socket.end(GOING_AWAY_FRAME);
  // The client should answer the close and hang up; one that does not is cut off.
  setTimeout(() => socket.destroy(), TUNNEL_CLOSE_GRACE_MS).unref();
  return closed;
}

/** What a close frame said: its status code (none when it carried no payload) and its reason. */
export interface CloseFrame {
  readonly code: number | undefined;
  readonly reason: Buffer;
}

const CLOSE_OPCODE = 0x8;
/** Control frames carry at most 125 bytes (RFC 6455 §5.5); a longer "close" is not one we read. */
const MAX_CONTROL_PAYLOAD = 125;
const MAX_HEADER = 14;

/**
 * Reads the frame headers of one direction of a WebSocket stream, chunk by chunk, until a close
 * frame has gone by, and reports it. Payloads are skipped by their length, never copied, so a
 * chunk costs its frame headers only; frames may be split anywhere across chunks. Extensions
 * change nothing here: permessage-deflate compresses data frames only, never control frames.
 * Returns `false` once it has stopped (close frame seen, or a stream it cannot read).
 */
export class CloseFrameReader {
  readonly #header = Buffer.alloc(MAX_HEADER);
  #headerFilled = 0;
  #skipping = 0;
  #closePayload: Buffer | undefined;
  #closeFilled = 0;
  #mask: Buffer | undefined;
  #stopped = false;

  constructor(private readonly onClose: (frame: CloseFrame) => void) {}

  feed(chunk: Buffer): boolean {
    let at = 0;
    while (at < chunk.length && !this.#stopped) {
      if (this.#skipping > 0) {
        const skipped = Math.min(this.#skipping, chunk.length - at);
        this.#skipping -= skipped;
        at += skipped;
      } else if (this.#closePayload) {
        const copied = chunk.copy(this.#closePayload, this.#closeFilled, at);
        this.#closeFilled += copied;
        at += copied;
        if (this.#closeFilled === this.#closePayload.length) this.#finish(this.#closePayload);
      } else {
        this.#header[this.#headerFilled++] = chunk[at++]!;
        this.#readHeader();
      }
    }
    return !this.#stopped;
  }

  /** Acts on the header once all its bytes are in: 2, plus 2 or 8 of length, plus 4 of mask. */
  #readHeader(): void {
    if (this.#headerFilled < 2) return;
    const header = this.#header;
    const lengthByte = header[1]! & 0x7f;
    const masked = (header[1]! & 0x80) !== 0;
    const lengthBytes = lengthByte === 126 ? 2 : lengthByte === 127 ? 8 : 0;
    const size = 2 + lengthBytes + (masked ? 4 : 0);
    if (this.#headerFilled < size) return;
    this.#headerFilled = 0;
    const length =
      lengthBytes === 0
        ? lengthByte
        : lengthBytes === 2
          ? header.readUInt16BE(2)
          : header.readUInt32BE(2) * 2 ** 32 + header.readUInt32BE(6);
    if ((header[0]! & 0x0f) !== CLOSE_OPCODE) {
      this.#skipping = length;
      return;
    }
    if (length > MAX_CONTROL_PAYLOAD) {
      this.#stopped = true;
      return;
    }
    this.#mask = masked ? Buffer.from(header.subarray(size - 4, size)) : undefined;
    this.#closePayload = Buffer.alloc(length);
    this.#closeFilled = 0;
    if (length === 0) this.#finish(this.#closePayload);
  }

  #finish(payload: Buffer): void {
    this.#stopped = true;
    const mask = this.#mask;
    if (mask)
      for (let index = 0; index < payload.length; index++)
        payload[index] = payload[index]! ^ mask[index % 4]!;
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
    this.onClose({ code, reason: payload.subarray(code === undefined ? 0 : 2) });
  }
}

/** The close-frame listener of each upstream socket whose tunnel is being set up. */
const closeListeners = new WeakMap<Socket, (frame: CloseFrame) => void>();

/** Asks for `onClose` once the upstream's close frame goes through the tunnel `upstream` is about to join. */
export function watchUpstreamClose(upstream: Socket, onClose: (frame: CloseFrame) => void): void {
  closeListeners.set(upstream, onClose);
}

/**
 * Starts reading the upstream's frame headers, without buffering or altering the stream: a
 * `data` listener beside the pipe, removed once the close frame went by. Called only once the
 * engine has piped `upstream` to the client (its `open` event): a `data` listener added before
 * would make the socket flow, and the bytes that came with the 101 (which the engine puts back
 * into the socket) would reach the listener alone, never the client.
 */
export function startWatching(upstream: Socket): void {
  const onClose = closeListeners.get(upstream);
  if (!onClose) return;
  closeListeners.delete(upstream);
  const reader = new CloseFrameReader(onClose);
  const onData = (chunk: Buffer): void => {
    // A socket listener runs outside every error boundary: a reader or a trace that throws stops
    // the watching (its close goes unreported), never the process.
    let reading: boolean;
    try {
      reading = reader.feed(chunk);
    } catch {
      reading = false;
    }
    if (!reading) upstream.off('data', onData);
  };
  upstream.on('data', onData);
}
