/** A one-line progress bar on stderr, drawn only when stderr is a terminal. */
import { formatBytes } from '../shared/units.js';

export class ProgressBar {
  private last = 0;
  private readonly started = Date.now();
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    enabled = Boolean(process.stderr.isTTY),
  ) {
    this.enabled = enabled;
  }

  /** Redraws at most every 100 ms (always at 100 %). `done` in bytes. */
  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && done < this.total) return;
    this.last = now;
    const pct = this.total > 0 ? Math.floor((done / this.total) * 100) : 100;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const rate = done / Math.max(0.001, (now - this.started) / 1000);
    process.stderr.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${formatBytes(done)}/${formatBytes(this.total)} ${formatBytes(rate)}/s   `,
    );
  }

  /** Ends the line. */
  end(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}
