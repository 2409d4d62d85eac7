/**
 * Splits the multiplexed stream of an attach without a TTY into stdout and stderr, without copying.
 *
 * Docker Engine API, "Attach to a container" (stream format): each frame is an 8-byte header
 * `[STREAM_TYPE, 0, 0, 0, SIZE1, SIZE2, SIZE3, SIZE4]` (type 0 stdin, 1 stdout, 2 stderr; size a
 * big-endian uint32), then SIZE bytes of output. dockerode's `modem.demuxStream` concatenates every
 * chunk onto what it holds and copies the rest after each frame: at 100 MB of output that was most of
 * the agent's allocations, and the garbage collector's work with them (bench/profile.md). Here a
 * frame's bytes go on as views of the chunks they arrived in; only a header split between two chunks
 * is copied (at most 8 bytes).
 *
 * Like dockerode's, a header with another stream type (the stream is not multiplexed after all: a
 * TTY, or misaligned) sends everything from there on to stdout as it comes.
 */

/** Where a frame's bytes go: `stream` 'stdout' or 'stderr' (stdin frames go to stdout: the Engine API's "stdin (is written on stdout)"). */
export type DemuxSink = (stream: 'stdout' | 'stderr', bytes: Buffer) => void;

const HEADER = 8;

export class DockerDemux {
  /** Bytes of a header not complete yet (0 to 7 of them). */
  private header = Buffer.alloc(HEADER);
  private headerHave = 0;
  /** The stream of the frame being read, and how many of its bytes are still to come. */
  private stream: 'stdout' | 'stderr' = 'stdout';
  private left = 0;
  /** Not multiplexed: every byte is stdout. */
  private raw = false;

  constructor(private readonly sink: DemuxSink) {}

  /** Takes the next chunk of the attach stream; its views are handed on (do not reuse the chunk). */
  write(chunk: Buffer): void {
    if (this.raw) {
      if (chunk.length > 0) this.sink('stdout', chunk);
      return;
    }
    let at = 0;
    while (at < chunk.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - at);
        this.sink(this.stream, chunk.subarray(at, at + n));
        this.left -= n;
        at += n;
        continue;
      }
      const n = Math.min(HEADER - this.headerHave, chunk.length - at);
      chunk.copy(this.header, this.headerHave, at, at + n);
      this.headerHave += n;
      at += n;
      if (this.headerHave < HEADER) return;
      this.headerHave = 0;
      const type = this.header[0];
      if (type > 2) {
        // Not a multiplexed stream: what was taken as a header is output too.
        this.raw = true;
        this.sink('stdout', Buffer.from(this.header));
        if (at < chunk.length) this.sink('stdout', chunk.subarray(at));
        return;
      }
      this.stream = type === 2 ? 'stderr' : 'stdout';
      this.left = this.header.readUInt32BE(4);
    }
  }
}
