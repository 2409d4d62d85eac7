/**
 * The one progress bar of the CLI (cutter cp, image push, ollama pull, a docker pull inside
 * cutter run): `llama3:8b  42% [############................] 1.9 GiB / 4.7 GiB  38.2 MiB/s  1m 15s left`,
 * on stderr, redrawn in place and only on a terminal (a log file gets no bar: the command's
 * result line says what was moved). Bytes in binary units (shared/units.ts formatBytes).
 */
import { formatBytes, formatDuration } from '../shared/units.js';
import { isTerminal, REDRAW } from './tty.js';

const WIDTH = 28;

/**
 * The bar's text for `done` of `total` bytes.
 * @param rate bytes per second so far (none shown when undefined or 0).
 * @param total 0 or less when unknown: the bar then shows only the bytes done.
 */
export function progressLine(label: string, done: number, total: number, rate?: number): string {
  const speed = rate ? `  ${formatBytes(Math.round(rate))}/s` : '';
  if (total <= 0) return `${label}  ${formatBytes(done)}${speed}`;
  const frac = Math.max(0, Math.min(1, done / total));
  const filled = Math.round(frac * WIDTH);
  const left = rate && done < total ? `  ${formatDuration(((total - done) / rate) * 1000)} left` : '';
  return `${label} ${String(Math.floor(frac * 100)).padStart(3)}% [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${formatBytes(done)} / ${formatBytes(total)}${speed}${left}`;
}

export class ProgressBar {
  private last = 0;
  private started = Date.now();
  private drawn = false;
  private readonly enabled: boolean;

  /**
   * @param label what moves (a file, an image, a model).
   * @param total bytes expected (0 or less: unknown).
   * @param enabled default: stderr is a terminal.
   */
  constructor(
    private label: string,
    private total: number,
    enabled = isTerminal(process.stderr),
  ) {
    this.enabled = enabled;
  }

  /**
   * Redraws at most every 100 ms (always at 100 %).
   * @param done bytes done.
   * @param total a new total (a pull learns its layer's size late); a new `label` restarts the rate.
   */
  update(done: number, total = this.total, label = this.label): void {
    if (!this.enabled) return;
    if (label !== this.label) {
      this.label = label;
      this.started = Date.now();
    }
    this.total = total;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const secs = (now - this.started) / 1000;
    process.stderr.write(`${REDRAW}${progressLine(this.label, done, total, secs > 0.5 ? done / secs : undefined)}`);
    this.drawn = true;
  }

  /** Ends the line (when a bar was drawn). */
  end(): void {
    if (this.enabled && this.drawn) process.stderr.write('\n');
    this.drawn = false;
  }
}
