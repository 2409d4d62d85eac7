/**
 * The client's half of a task's staging → running → collecting phases (`cutter run --input/--output`,
 * shared/schemas/io.ts). Watches the task's events from before the submit: when an attempt is
 * `accepted` (the node waits for its inputs) the inputs are sent to that node (again for a later
 * attempt on another node); a staging that fails here tells the node (`io.abort`), so the attempt
 * fails STAGING_FAILED with the reason. After the follow ended, the outputs of the attempt that
 * reported a `result` are collected. Progress lines go to stderr (not with `--json`).
 */
import type { MeshClient } from '../../shared/client/index.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { TaskEvent } from '../../shared/schemas/index.js';
import { formatBytes, formatDuration } from '../../shared/units.js';
import { FileLink } from '../../shared/transfer/link.js';
import { ProgressBar } from '../progress.js';
import type { IoDir } from './args.js';
import { abortStaging, collectOutputs, type IoSummary, stageInputs } from './transfer.js';

/** What `cutter run --json` adds as `io`: bytes up (inputs sent) and down (outputs fetched), and each phase's figures. */
export interface IoReport {
  bytesUp: number;
  bytesDown: number;
  inputs?: IoSummary;
  outputs?: IoSummary;
  /** Why staging or collecting failed, when one did. */
  error?: { code: 'STAGING_FAILED' | 'COLLECT_FAILED'; message: string };
}

export class TaskIo {
  private unwatch?: () => Promise<void>;
  private staged = 0;
  private staging: Promise<void> = Promise.resolve();
  /** The attempt that reported a result: its outputs are collected. */
  private ran?: { node: string; attempt: number };
  readonly report: IoReport = { bytesUp: 0, bytesDown: 0 };

  constructor(
    private readonly client: MeshClient,
    private readonly taskId: string,
    private readonly inputs: IoDir[],
    private readonly outputs: IoDir[],
    private readonly quiet: boolean,
  ) {}

  /** True when the task has inputs or outputs. */
  get active(): boolean {
    return this.inputs.length + this.outputs.length > 0;
  }

  private say(line: string): void {
    if (!this.quiet) process.stderr.write(`cutter: ${line}\n`);
  }

  /** Starts watching the task (before its submit, so no `accepted` is missed). */
  async watch(): Promise<void> {
    if (!this.active) return;
    this.unwatch = await this.client.watchTask(this.taskId, { onEvent: (e) => this.onEvent(e), onState: () => undefined });
  }

  private onEvent(e: TaskEvent): void {
    if (e.type === 'result') this.ran = { node: e.node, attempt: e.attempt };
    // Outputs only: the node creates them and starts the task without waiting.
    if (e.type !== 'accepted' || e.attempt <= this.staged || !this.inputs.length) return;
    this.staged = e.attempt;
    this.staging = this.staging.then(() => this.stage(e.node, e.attempt));
  }

  private async stage(node: string, attempt: number): Promise<void> {
    const task = { id: this.taskId, attempt };
    const link = new FileLink(this.client.mqtt, this.client.topics, node, this.client.clientId);
    let bar: ProgressBar | undefined;
    try {
      await link.open();
      this.say(`staging ${this.inputs.length} input director${this.inputs.length > 1 ? 'ies' : 'y'} on node ${node}…`);
      const s = await stageInputs(link, task, this.inputs, {
        onProgress: (done, total) => {
          if (!this.quiet) (bar ??= new ProgressBar(`inputs → ${node}`, total)).update(done);
        },
      });
      bar?.end();
      this.report.inputs = s;
      this.report.bytesUp += s.bytesSent;
      this.say(
        `inputs staged on ${node} in ${formatDuration(s.ms)}: ${s.filesSent} of ${s.files} files sent (${formatBytes(s.bytesSent)}), ` +
          `${s.filesSkipped} already there with the same SHA-256 (${formatBytes(s.bytesSkipped)} not sent)`,
      );
    } catch (err) {
      bar?.end();
      const message = `could not send the inputs to node ${node}: ${errorMessage(err)}`;
      this.report.error = { code: 'STAGING_FAILED', message };
      await abortStaging(link, task, message);
    } finally {
      await link.close();
    }
  }

  /**
   * After the follow ended: collects the outputs of the attempt that ran (none when no attempt
   * reported a result: nothing ran). @returns the error message when collecting failed, else null.
   */
  async finish(): Promise<string | null> {
    await this.staging;
    await this.unwatch?.();
    if (!this.outputs.length) return null;
    if (!this.ran) {
      this.say('no outputs to collect: the task did not run');
      return null;
    }
    const { node, attempt } = this.ran;
    const link = new FileLink(this.client.mqtt, this.client.topics, node, this.client.clientId);
    this.say(`collecting outputs from node ${node}…`);
    try {
      await link.open();
      const s = await collectOutputs(link, { id: this.taskId, attempt }, this.outputs);
      this.report.outputs = s;
      this.report.bytesDown += s.bytesSent;
      this.say(
        `outputs collected from ${node} in ${formatDuration(s.ms)}: ${s.filesSent} of ${s.files} files received (${formatBytes(s.bytesSent)}), ` +
          `${s.filesSkipped} unchanged here; SHA-256 verified; into ${this.outputs.map((o) => o.local).join(', ')}`,
      );
      return null;
    } catch (err) {
      const message = `could not collect the outputs from node ${node}: ${errorMessage(err)}${
        err instanceof CutterError && err.code === 'NOT_FOUND' ? '' : ' (they stay on the node for an hour)'
      }`;
      this.report.error = { code: 'COLLECT_FAILED', message };
      return message;
    } finally {
      await link.close();
    }
  }

  /** One line: the bytes moved each way. */
  summary(): string {
    return `moved ${formatBytes(this.report.bytesUp)} up (inputs), ${formatBytes(this.report.bytesDown)} down (outputs)`;
  }
}
