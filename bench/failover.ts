/**
 * Failure detection and rescheduling, measured over repeated trials with real processes:
 * a node runs a long exec task, then dies —
 *  - SIGKILL (process gone, socket closed: the broker fires its last will);
 *  - SIGSTOP (machine frozen or network gone: the socket stays open, only silence tells);
 * and the time is taken from the signal to (a) the controller listing the node offline and
 * (b) the task running again on the other node. Printed beside the configured heartbeat
 * interval and keepalive.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import mqtt from 'mqtt';
import { CUTTER, startBenchServer, startDaemon } from '../scripts/procs.js';
import { topics } from '../shared/topics.js';

export interface FailoverResult {
  mode: 'SIGKILL' | 'SIGSTOP';
  offlineMs: number[];
  rescheduledMs: number[];
}

const HEARTBEAT_MS = 1000;
const KEEPALIVE_S = 2;

/** Runs `cutter ARGS…` (with --json among them) and parses what it prints. */
function cliJson(broker: string, args: string[]): unknown {
  const r = spawnSync(process.execPath, [CUTTER, ...args], { encoding: 'utf8', env: { ...process.env, CUTTER_BROKER: broker } });
  if (r.status !== 0) throw new Error(`cutter ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function trial(
  mode: FailoverResult['mode'],
  broker: string,
  n: number,
  children: ChildProcess[],
): Promise<{ offline: number; rescheduled: number }> {
  const victimId = `victim-${mode.toLowerCase()}-${n}`;
  const args = (id: string) => [
    'agent',
    '--broker',
    broker,
    '--node-id',
    id,
    '--allow-exec',
    '--heartbeat',
    String(HEARTBEAT_MS),
    '--keepalive',
    `${KEEPALIVE_S}s`,
    '--log-level',
    'warn',
  ];
  const victim = await startDaemon([...args(victimId), '--log-level', 'info'], 'agent started');
  children.push(victim);
  // The task must start on the victim but be free to move: keep the backup drained until it runs.
  cliJson(broker, ['nodes', 'drain', 'backup', '--json']);
  const task = cliJson(broker, ['run', '-d', '--json', 'exec', '--', 'sleep', '60']) as { taskId: string };
  for (;;) {
    const t = cliJson(broker, ['tasks', 'show', task.taskId, '--json']) as { state: string; node: string };
    if (t.state === 'running' && t.node === victimId) break;
    await sleep(50);
  }
  cliJson(broker, ['nodes', 'resume', 'backup', '--json']);
  // Watch through one MQTT client: the task's retained state as it changes, and the controller's
  // node view polled every 20 ms (spawning a CLI per poll would blur the figures by its start-up).
  const t = topics();
  const watcher = await mqtt.connectAsync(broker, { clientId: `bench-watch-${n}-${mode}` });
  (watcher.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  let offline = 0;
  let rescheduled = 0;
  const t0 = Date.now();
  watcher.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    const msg = JSON.parse(payload.toString()) as {
      state?: string;
      attempt?: number;
      result?: { nodes: { node: string; state: string }[] };
    };
    if (
      topic === t.taskState(task.taskId) &&
      !rescheduled &&
      (msg.attempt ?? 0) > 1 &&
      (msg.state === 'running' || msg.state === 'assigned')
    )
      rescheduled = Date.now() - t0;
    if (
      topic === t.replies(`bench-watch-${n}-${mode}`) &&
      !offline &&
      msg.result?.nodes.find((x) => x.node === victimId)?.state === 'offline'
    )
      offline = Date.now() - t0;
  });
  await watcher.subscribeAsync([t.taskState(task.taskId), t.replies(`bench-watch-${n}-${mode}`)], { qos: 1 });
  victim.kill(mode);
  let id = 0;
  while (!offline || !rescheduled) {
    if (Date.now() - t0 > 30_000) throw new Error(`${mode} trial ${n}: no failover within 30 s`);
    await watcher.publishAsync(t.requests(`bench-watch-${n}-${mode}`), JSON.stringify({ v: 1, id: String(++id), op: 'node.list' }), {
      qos: 0,
    });
    await sleep(20);
  }
  await watcher.endAsync();
  if (mode === 'SIGSTOP') victim.kill('SIGKILL');
  spawnSync(process.execPath, [CUTTER, 'cancel', task.taskId, '--no-wait'], { env: { ...process.env, CUTTER_BROKER: broker } });
  return { offline, rescheduled };
}

/** Runs `trials` trials of each mode against a fresh server. */
export async function measureFailover(trials: number): Promise<FailoverResult[]> {
  const children: ChildProcess[] = [];
  try {
    const { broker } = await startBenchServer({ children });
    // The backup node that takes the rescheduled tasks (sleep 60 ×, so give it room).
    children.push(
      await startDaemon(
        [
          'agent',
          '--broker',
          broker,
          '--node-id',
          'backup',
          '--allow-exec',
          '--max-tasks',
          '100',
          '--heartbeat',
          String(HEARTBEAT_MS),
          '--log-level',
          'info',
        ],
        'agent started',
      ),
    );
    const out: FailoverResult[] = [];
    for (const mode of ['SIGKILL', 'SIGSTOP'] as const) {
      const r: FailoverResult = { mode, offlineMs: [], rescheduledMs: [] };
      for (let i = 0; i < trials; i++) {
        const { offline, rescheduled } = await trial(mode, broker, i, children);
        r.offlineMs.push(offline);
        r.rescheduledMs.push(rescheduled);
      }
      out.push(r);
    }
    return out;
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

export const FAILOVER_CONFIG = { heartbeatMs: HEARTBEAT_MS, keepaliveSec: KEEPALIVE_S };
