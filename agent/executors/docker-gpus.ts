/**
 * GPUs for docker tasks: the Engine API's `HostConfig.DeviceRequests`, as `docker run --gpus
 * '"device=GPU-…"'` sends it (verified by recording the CLI's create request: `Driver ""`, `Count 0`,
 * `DeviceIDs`, `Capabilities [["gpu"]]`). Explicit UUIDs, never `Count: N`: the daemon maps a
 * count to the first N indices (`NVIDIA_VISIBLE_DEVICES=0..N-1`, moby `daemon/nvidia_linux.go`),
 * whatever cutter reserved. With `Driver ""` the engine picks the first registered driver with the
 * `gpu` capability (the `nvidia` one when nvidia-container-toolkit is installed).
 *
 * An engine without a GPU runtime creates such a container but refuses to start it: `could not
 * select device driver "" with capabilities: [[gpu]]` (HTTP 500 on Engine 20.10; newer engines
 * answer 400: moby `daemon/errors.go` incompatibleDeviceRequest): matched on the text, not the status.
 */
import type Docker from 'dockerode';
import { CutterError } from '../../shared/errors.js';
import type { Fingerprint } from './executor.js';

/** The create body's device requests for these GPUs (UUIDs). */
export function deviceRequests(gpus: readonly string[]): Docker.DeviceRequest[] {
  return [{ Driver: '', Count: 0, DeviceIDs: [...gpus], Capabilities: [['gpu']], Options: {} }];
}

/** Whether an engine error says it has no driver for a GPU device request. */
export function isNoGpuRuntime(message: string): boolean {
  return /could not select device driver/i.test(message);
}

/** The task's error (and the node's `docker.gpuError`) when the engine has no GPU runtime. */
export function noGpuRuntimeMessage(node: string, engineSaid: string): string {
  return (
    `this node's Docker has no GPU runtime: install nvidia-container-toolkit on node ${node} and restart Docker ` +
    `(the engine said: ${engineSaid.slice(0, 200)})`
  );
}

/**
 * Whether the node's engine can give containers GPUs, as learnt from its answers: set when it
 * refused to start one for lack of a GPU runtime (announced as `docker.gpuError`, so no GPU docker
 * task is placed there), cleared when the engine restarts (its owner may have installed one).
 */
export class GpuRuntime {
  private error?: string;
  /** Told the executor's new fingerprint at once when the engine is found to have no GPU runtime. */
  notify?: (fp: Fingerprint) => void;

  /** @param fingerprint the executor's fingerprint (with `field()` in it). */
  constructor(private readonly fingerprint: () => Promise<Fingerprint>) {}

  /** `{ gpuError }` for `capacity.docker` while the engine is known to have no GPU runtime, else `{}`. */
  field(): { gpuError?: string } {
    return this.error ? { gpuError: this.error } : {};
  }

  /** The engine restarted: it may have a GPU runtime now. */
  clear(): void {
    this.error = undefined;
  }

  /**
   * Looks at a start error of a container with GPUs. When it says the engine has no GPU runtime,
   * remembers it, announces it and throws the task's error.
   * @throws CutterError START_FAILED "this node's Docker has no GPU runtime: install nvidia-container-toolkit …".
   */
  check(node: string, engineSaid: string): void {
    if (!isNoGpuRuntime(engineSaid)) return;
    const message = noGpuRuntimeMessage(node, engineSaid);
    this.error = message.slice(0, 500);
    const notify = this.notify;
    if (notify) void this.fingerprint().then(notify, () => undefined);
    throw new CutterError('START_FAILED', message);
  }
}

/** The label that keeps a container's GPUs (UUIDs, comma-separated), so a restarted agent lists them again. */
export const LABEL_GPUS = 'io.cutter.gpus';

/** `{ [LABEL_GPUS]: "GPU-a,GPU-b" }` for a container with GPUs, else `{}`. */
export function gpusLabel(gpus: readonly string[] | undefined): Record<string, string> {
  return gpus?.length ? { [LABEL_GPUS]: gpus.join(',') } : {};
}

/** The GPUs a re-adopted container's label names (malformed entries dropped, at most 64): `{ gpus }` or `{}`. */
export function gpusFromLabel(labels: Record<string, string>): { gpus?: string[] } {
  const gpus = (labels[LABEL_GPUS] ?? '')
    .split(',')
    .filter((g) => /^GPU-[0-9A-Za-z-]{1,120}$/.test(g))
    .slice(0, 64);
  return gpus.length ? { gpus } : {};
}
