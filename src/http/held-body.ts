/** A body the gateway holds in full, because a host parser or provider routing read the stream. */
export interface HeldBody {
  readonly bytes: Buffer;
  /** The bytes as received, still in the request's `Content-Encoding`; otherwise rebuilt plain. */
  readonly asReceived: boolean;
}
