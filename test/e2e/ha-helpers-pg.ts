/**
 * Helpers of the PostgreSQL HA tests (ha-postgres.test.ts): servers with `--state postgres://…`
 * on a shared Mosquitto, a loopback TCP proxy that can black-hole a server's path to PostgreSQL,
 * and a watcher of the task state and assignment topics.
 */
import { isLogFrame } from '../../shared/log-frame.js';
import { createServer, type Server, type Socket, connect } from 'node:net';
import mqtt from 'mqtt';
import type { Daemon } from '../harness.js';
import { tempDir } from '../harness.js';
import { spawnCutterDaemon } from '../netns.js';

/** Starts `cutter server` as one of several sharing `state` and the broker `url`. */
export function haServer(url: string, state: string, name: string, env: NodeJS.ProcessEnv = {}): Daemon {
  return spawnCutterDaemon(
    ['server', '--broker', url, '--state', state, '--data-dir', tempDir('cutter-ha-data-'), '--leader-lease', '3s'],
    name,
    {
      env: {
        CUTTER_STARTUP_GRACE_MS: '3000',
        CUTTER_KEEP_FINISHED: '5000',
        CUTTER_SUBMITS_PER_MINUTE: '100000',
        CUTTER_LEASE_MS: '30000',
        ...env,
      },
    },
  );
}

/**
 * A TCP proxy to `target` on loopback; `blackhole()` stops moving bytes both ways (sockets stay
 * open, as on a cut network); `heal()` forwards new connections again (the cut ones stay dead).
 */
export async function tcpProxy(
  target: number,
): Promise<{ port: number; blackhole: () => void; heal: () => void; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let cut = false;
  let generation = 0;
  const server: Server = createServer((inbound) => {
    if (cut) return; // accepted and never answered
    const mine = generation;
    const dead = () => cut || mine !== generation;
    const outbound = connect(target, '127.0.0.1');
    sockets.add(inbound).add(outbound);
    inbound.on('data', (d) => !dead() && outbound.write(d));
    outbound.on('data', (d) => !dead() && inbound.write(d));
    const end = () => {
      if (dead()) return;
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('close', end).on('error', end);
    outbound.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    blackhole: () => {
      cut = true;
    },
    heal: () => {
      generation++;
      cut = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export type StateMsg = { taskId: string; state: string; attempt: number; node: string | null; exitCode: number | null };

/** Every task state change, every assignment and every successful result seen on the broker. */
export async function watchMesh(url: string): Promise<{
  states: Map<string, StateMsg[]>;
  assigns: Map<string, number[]>;
  successes: Map<string, Set<string>>;
  close: () => Promise<void>;
}> {
  const states = new Map<string, StateMsg[]>();
  const assigns = new Map<string, number[]>();
  const successes = new Map<string, Set<string>>();
  const client = await mqtt.connectAsync(url, { clientId: `ha-watch-${process.pid}-${Date.now()}`, reconnectPeriod: 500 });
  client.on('message', (topic, payload) => {
    if (payload.length === 0 || isLogFrame(payload)) return; // output (binary log frames) is not watched here
    const m = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    if (topic.endsWith('/state')) {
      const s = m as unknown as StateMsg;
      states.set(s.taskId, [...(states.get(s.taskId) ?? []), s]);
    } else if (topic.endsWith('/assign')) {
      const id = m.taskId as string;
      assigns.set(id, [...(assigns.get(id) ?? []), m.attempt as number]);
    } else if (topic.endsWith('/events') && m.type === 'result' && m.exitCode === 0) {
      const id = m.taskId as string;
      successes.set(id, (successes.get(id) ?? new Set()).add(`${String(m.node)}#${String(m.attempt)}`));
    }
  });
  await client.subscribeAsync(['cutter/v1/tasks/+/state', 'cutter/v1/nodes/+/assign', 'cutter/v1/tasks/+/events'], { qos: 1 });
  return { states, assigns, successes, close: () => client.endAsync() };
}

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'lost']);

/** Terminal states a task's state stream went through, in order (a repeat of the same one counts once). */
export function terminalStates(msgs: StateMsg[]): string[] {
  const out: string[] = [];
  for (const m of msgs) if (TERMINAL.has(m.state) && out.at(-1) !== `${m.state}@${m.attempt}`) out.push(`${m.state}@${m.attempt}`);
  return [...new Set(out)];
}

/** The `time` (ms epoch, pino) of the first log line with this message, or null. */
export function loggedAt(d: Daemon, msg: string): number | null {
  const line = d.lines.find((l) => l.msg === msg);
  return typeof line?.time === 'number' ? line.time : null;
}
