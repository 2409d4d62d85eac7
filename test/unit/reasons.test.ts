/** formatRejection: the one place a scheduler rejection becomes words (what `cutter run` and a queued task show). */
import { describe, expect, it } from 'vitest';
import { formatRejection, formatRejections, rejectionLabel } from '../../shared/reasons.js';
import { RejectionCodeSchema, RejectionSchema, type Rejection } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('formatRejection', () => {
  it('says each code in words a person can act on, with the numbers in units', () => {
    const cases: [Omit<Rejection, 'node'>, string][] = [
      [{ code: 'unknown-node' }, 'unknown node'],
      [{ code: 'offline', detail: 'agent shutting down' }, 'offline (agent shutting down)'],
      [{ code: 'offline' }, 'offline'],
      [{ code: 'draining' }, 'draining: takes no new tasks'],
      [{ code: 'drained' }, 'drained (cutter nodes resume to undo)'],
      [{ code: 'stale-heartbeat', silentMs: 5_001 }, 'stale: no heartbeat for 5.0 s'],
      [{ code: 'unannounced' }, 'has not announced its capacity yet'],
      [{ code: 'no-docker', detail: 'connect ENOENT /var/run/docker.sock' }, 'no Docker engine (connect ENOENT /var/run/docker.sock)'],
      [{ code: 'no-docker' }, 'no Docker engine'],
      [{ code: 'no-ollama', detail: 'not reachable' }, 'no Ollama server (not reachable)'],
      [{ code: 'no-exec' }, 'does not run exec tasks (start its agent with --allow-exec)'],
      [
        { code: 'exec-limits', detail: 'memory limit: no cgroup v1 memory hierarchy is mounted' },
        'cannot enforce the limits of exec tasks (memory limit: no cgroup v1 memory hierarchy is mounted): run its agent as root with cgroups mounted, or drop --memory/--cpus',
      ],
      [
        { code: 'exec-tty', detail: 'node-pty is not installed with its agent' },
        'cannot give exec tasks a TTY (node-pty is not installed with its agent): drop -t, or run it on a node that can',
      ],
      [{ code: 'max-tasks', running: 2, max: 2 }, 'busy: 2 of at most 2 tasks running'],
      [{ code: 'cpus', needed: 4.5, free: 4 }, 'needs 4.5 CPUs, has 4'],
      [
        { code: 'memory', needed: GiB, free: 64 * MiB, offered: 8 * GiB, available: 3 * GiB, held: 0 },
        'needs 1.0 GiB memory, has 64.0 MiB free (offers 8.0 GiB, 3.0 GiB available, 0 B held by tasks)',
      ],
      [{ code: 'model-missing', model: 'mistral:7b' }, 'does not have model mistral:7b'],
      [
        { code: 'model-too-big', model: 'qwen:32b', needed: 20 * GiB, free: 8 * GiB, gpuFree: 0, onDisk: true },
        'has model qwen:32b (20.0 GiB) but has 8.0 GiB free memory to load it',
      ],
      [
        { code: 'model-too-big', model: 'qwen:32b', needed: 20 * GiB, free: 8 * GiB, gpuFree: 6 * GiB, onDisk: false },
        'would pull model qwen:32b (20.0 GiB) but has 8.0 GiB free memory and 6.0 GiB free on its GPU to load it',
      ],
      [
        { code: 'placement-rule', model: 'gemma2:2b', rule: { index: 0, model: 'gemma2:*', nodes: ['server'] } },
        'placement rule 1 (model gemma2:* → server) sends gemma2:2b elsewhere',
      ],
      [
        { code: 'constraint', wanted: 'gpu=rtx4090', has: 'a100' },
        'constraint gpu=rtx4090 not met: its label is gpu=a100 (cutter agent --label key=value)',
      ],
      [{ code: 'platform', wanted: 'linux/arm64', has: 'linux/amd64' }, 'needs platform linux/arm64, the node is linux/amd64'],
      [{ code: 'disk', needed: 10 * GiB, free: 2 * GiB }, 'needs 10.0 GiB free disk, has 2.0 GiB'],
      [
        { code: 'policy', detail: 'image evil/miner is not allowed here (allowedImages: cutter-test/*)' },
        'its policy refuses the task: image evil/miner is not allowed here (allowedImages: cutter-test/*)',
      ],
      [
        { code: 'gpus', needed: 1, free: 0, gpuTotal: 2, gpusHeld: 1, gpuMemory: 20 * GiB, gpuFree: 7 * GiB },
        'needs 1 GPU with 20.0 GiB free VRAM, has 0 of 2 free (1 held by tasks, most free VRAM 7.0 GiB)',
      ],
      [
        { code: 'volume', detail: 'no volume data: cutter volume create NODE:data' },
        'lacks what the task mounts (no volume data: cutter volume create NODE:data)',
      ],
      [
        { code: 'lending', detail: 'closed: outside mon-fri 22:00-07:00' },
        'not lending now: closed: outside mon-fri 22:00-07:00 (cutter nodes policy NODE to change it)',
      ],
    ];
    for (const [r, words] of cases) {
      const rejection = RejectionSchema.parse({ node: 'n1', ...r });
      expect(formatRejection(rejection)).toBe(words);
    }
    // Every code has words and a metrics label.
    expect(new Set(cases.map(([r]) => r.code))).toEqual(new Set(RejectionCodeSchema.options));
    for (const code of RejectionCodeSchema.options) expect(rejectionLabel(code)).toMatch(/^[a-z]+$/);
  });

  it('joins several as `node: words; node: words`', () => {
    expect(
      formatRejections([
        { node: 'a', code: 'draining' },
        { node: 'b', code: 'offline', detail: 'connection lost' },
      ]),
    ).toBe('a: draining: takes no new tasks; b: offline (connection lost)');
  });
});
