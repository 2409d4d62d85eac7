/**
 * Shared by the agent recovery tests (agent-recovery, agent-drain, agent-fencing): gated container
 * commands a test releases, a raw MQTT watcher, Docker and CLI look-ups, and a bare in-process
 * broker for the agent alone.
 */
import { decodeLogFrame, isLogFrame } from '../../shared/log-frame.js';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { topics } from '../../shared/topics.js';
import { cli, eventually } from '../harness.js';

export const t = topics('cutter');

/**
 * A container command that prints `before`, then runs until the test creates /tmp/go in it
 * (`release(taskId)`), then prints `done` and exits 7: it outlasts an agent restart however
 * slow the machine is, where a fixed `sleep 3` may not.
 */
export const GATED = ['sh', '-c', 'echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo done; exit 7'];
/** Like GATED, silent, exits 5. */
export const GATED_5 = ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 5'];

/** `eventually`, typed: resolves with the first truthy value. */
export const until = async <T>(fn: () => Promise<T> | T, timeoutMs?: number, everyMs?: number) =>
  (await eventually(fn, timeoutMs, everyMs)) as NonNullable<T>;

export type Msg = Record<string, unknown> & { type?: string; taskId?: string; attempt?: number; seq?: number; state?: string };

/** A raw MQTT subscriber that keeps every JSON message it receives on `filter`. */
export async function watch(url: string, filter: string): Promise<{ messages: Msg[]; close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { clientId: `recovery-watch-${Math.random().toString(16).slice(2, 10)}` });
  const messages: Msg[] = [];
  client.on('message', (_topic, payload) => {
    if (payload.length === 0) return;
    try {
      // Output comes as binary log frames (shared/log-frame.ts), everything else as JSON.
      const frame = isLogFrame(payload) ? decodeLogFrame(payload) : null;
      messages.push(frame ? (frame.ok ? (frame.value as unknown as Msg) : ({} as Msg)) : (JSON.parse(payload.toString('utf8')) as Msg));
    } catch {
      // not ours
    }
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { messages, close: () => client.endAsync() };
}

/**
 * Runs the docker CLI; its trimmed stdout. @throws when it fails, with its exit status (or signal)
 * and both streams: `docker exec` writes a runtime's failure to start the command ("OCI runtime
 * exec failed: …", exit 126) on stdout, not stderr (moby's postContainerExecStart).
 */
export function docker(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) {
    const how = r.error ? String(r.error) : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`docker ${args.join(' ')}: ${how}: ${[r.stderr, r.stdout].filter((s) => s?.trim()).join(' | ') || 'no output'}`);
  }
  return r.stdout.trim();
}

/**
 * `docker exec REF ARGV…`, the tests' hook into a running container (never cutter's own path).
 * An exec the runtime could not start (exit 126, "OCI runtime exec failed") is tried again, at
 * most 4 more times 250 ms apart: runc's setns can fail on a loaded machine, which says nothing of
 * cutter. Any other failure, the command's own exit included, is thrown at once.
 */
export function dockerExec(ref: string, ...argv: string[]): string {
  for (let tries = 1; ; tries++) {
    try {
      return docker('exec', ref, ...argv);
    } catch (err) {
      if (tries >= 5 || !/exit 126: .*OCI runtime exec failed/s.test(String((err as Error).message))) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
}

/** Containers (any state) of one task: `id state` per line. */
export const containersOf = (taskId: string) =>
  docker('ps', '-a', '--filter', `label=io.cutter.task=${taskId}`, '--format', '{{.ID}} {{.State}}');

/** Lets a GATED container of the task finish. */
export const release = (taskId: string) => dockerExec(containersOf(taskId).split(' ')[0], 'touch', '/tmp/go');

/** `cutter tasks show ID --json`, parsed. */
export async function showTask(url: string, id: string): Promise<Msg & { exitCode?: number | null; error?: { code: string } | null }> {
  return JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
}

/** One node as `cutter nodes list --json` shows it, or undefined. */
export async function nodeView(
  url: string,
  node: string,
): Promise<{ node: string; state: string; status: Msg & { running: { taskId: string; attempt: number }[]; reason?: string } } | undefined> {
  const r = await cli(['nodes', 'list', '--json'], { broker: url });
  return (JSON.parse(r.stdout) as { node: string; state: string; status: Msg & { running: { taskId: string; attempt: number }[] } }[]).find(
    (n) => n.node === node,
  );
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A bare MQTT broker in this process: the agent alone, no controller answering for it. */
export async function bareBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        aedes.close(() => undefined);
      }),
  };
}
