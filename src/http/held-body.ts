/** A body the gateway holds in full, because a host parser or provider routing read the stream. */
export interface HeldBody {
  /**
   * The bytes, in the pieces they arrived, were decoded or spliced in: joining them would copy a
   * body of megabytes in one go, holding up every other request meanwhile.
   */
  readonly chunks: readonly Buffer[];
  /** The bytes as received, still in the request's `Content-Encoding`; otherwise rebuilt plain. */
  readonly asReceived: boolean;
}
