/**
 * Several servers, one leader (issue 20): two `cutter server --state postgres://…` share a
 * throwaway PostgreSQL cluster and one Mosquitto; agents and clients use the broker only.
 *
 * - SIGKILL the leader during a flood of 500 exec tasks (some `sleep 2`, still running at the
 *   kill) with a `cutter run` follower in flight: the standby leads within 5 s, every accepted
 *   task reaches exactly one terminal state (succeeded), none runs twice to success, the follower
 *   finishes with the task's exit code.
 * - Black-hole the leader's path to PostgreSQL (a TCP proxy that stops moving bytes): it gives the
 *   leadership up and stops (placing nothing more); the standby takes over; work submitted after
 *   the cut ends once, succeeded, and no attempt of it is assigned twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, cliBackground, freePort, startAgent } from '../harness.js';
import { Requester } from '../netns.js';
import { needs } from '../services.js';
import { type RunningPostgres, startPostgres } from '../../scripts/postgres.js';
import { type RunningMosquitto, startMosquitto } from '../../scripts/mosquitto.js';
import { haServer, loggedAt, tcpProxy, TERMINAL, terminalStates, watchMesh } from './ha-helpers-pg.js';

const svc = needs('postgres', 'mosquitto');
const TASKS = 500;
const LONG = 20;
const WINDOW = 20;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe.skipIf(svc.skip)(`servers sharing PostgreSQL, one leading${svc.tag}`, () => {
  let pg: RunningPostgres;
  let mosquitto: RunningMosquitto;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    pg = await startPostgres();
    mosquitto = await startMosquitto(await freePort());
  }, 120_000);
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await mosquitto?.stop();
    await pg?.stop();
  });

  it('a standby leads within 5 s of the leader being SIGKILLed mid-flood; every accepted task ends once, none succeeds twice', async () => {
    const state = await pg.createDatabase('flood');
    const url = mosquitto.url;
    const a = haServer(url, state, 'server a');
    daemons.push(a);
    await a.waitForMsg('controller started', 60_000);
    const b = haServer(url, state, 'server b');
    daemons.push(b);
    await b.waitForMsg('standing by for the leadership', 60_000);
    for (const node of ['ha1', 'ha2'])
      daemons.push(await startAgent(url, node, ['--allow-exec', '--max-tasks', '12', '--heartbeat', '2000']));
    const mesh = await watchMesh(url);
    const req = await Requester.connect(url);
    // A follower in flight across the takeover: it must finish with its task's exit code.
    const follower = cliBackground(['run', 'exec', '--', 'sh', '-c', 'sleep 3; exit 3'], url);
    daemons.push(follower);

    const accepted = new Set<string>();
    let next = 0;
    let killedAt = 0;
    const submitOne = async () => {
      while (next < TASKS) {
        const i = next++;
        const taskId = `ha${String(i).padStart(3, '0')}`;
        const argv = i % (TASKS / LONG) === 0 ? ['sleep', '2'] : ['sleep', `0.0${i % 10}`];
        // A submit the dying leader took but never answered is sent again: the task id makes it idempotent.
        for (let tries = 0; tries < 6 && !accepted.has(taskId); tries++) {
          const r = await req
            .request(
              {
                op: 'submit',
                id: `${taskId}-${tries}`,
                taskId,
                spec: { kind: 'exec', argv, env: {} },
                requirements: { memory: 0, cpus: 0 },
                options: { restart: 'on-lost', maxAttempts: 3 },
              },
              8_000,
            )
            .catch(() => null);
          if (r?.ok) accepted.add(taskId);
        }
        if (i === 150) {
          killedAt = Date.now();
          await a.stop('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, submitOne));
    expect(accepted.size).toBe(TASKS);

    // The standby leads within 5 s of the kill (its own log's clock).
    await b.waitForMsg('controller started', 30_000);
    const ledAt = loggedAt(b, 'controller started')!;
    console.log(`takeover: standby's controller started ${ledAt - killedAt} ms after the SIGKILL`);
    expect(ledAt - killedAt).toBeLessThan(5_000);

    // Every accepted task reaches exactly one terminal state, succeeded; none succeeded twice.
    const open = () => [...accepted].filter((id) => !(mesh.states.get(id) ?? []).some((s) => TERMINAL.has(s.state)));
    for (let waited = 0; open().length > 0 && waited < 90_000; waited += 250) await sleep(250);
    expect(open()).toEqual([]);
    await sleep(1_000); // a late, wrong state change would show here
    const problems: string[] = [];
    for (const id of accepted) {
      const ends = terminalStates(mesh.states.get(id) ?? []);
      if (ends.length !== 1 || !ends[0]!.startsWith('succeeded@')) problems.push(`${id}: terminal states ${ends.join(', ')}`);
      const runs = mesh.successes.get(id)?.size ?? 0;
      if (runs > 1) problems.push(`${id}: succeeded ${runs} times (${[...mesh.successes.get(id)!].join(', ')})`);
    }
    if (problems.length) {
      // What each server logged about the first task in trouble, for the post-mortem.
      const id = problems[0]!.split(':')[0];
      for (const d of [a, b])
        console.log(
          d.name,
          d.lines
            .filter((l) => l.taskId === id)
            .map((l) => JSON.stringify(l))
            .join('\n'),
        );
    }
    expect(problems).toEqual([]);
    const task = await req.call<{ tasks: { state: string }[] }>({ op: 'task.list', limit: 1000 });
    expect(task.tasks.filter((t) => accepted.has((t as unknown as { taskId: string }).taskId)).length).toBe(TASKS);
    expect(await follower.exited).toBe(3);
    await req.end();
    await mesh.close();
    await b.stop();
  }, 180_000);

  it('a leader cut from PostgreSQL stops assigning and stops; the standby takes over and assigns the new work once', async () => {
    const state = await pg.createDatabase('cut');
    const proxy = await tcpProxy(pg.port);
    const url = mosquitto.url;
    const viaProxy = state.replace(`:${pg.port}/`, `:${proxy.port}/`);
    const [httpA, httpB] = [await freePort(), await freePort()];
    const a = haServer(url, viaProxy, 'server a (through the proxy)', { CUTTER_HTTP_PORT: String(httpA) });
    daemons.push(a);
    await a.waitForMsg('controller started', 60_000);
    const b = haServer(url, state, 'server b', { CUTTER_HTTP_PORT: String(httpB) });
    daemons.push(b);
    await b.waitForMsg('standing by for the leadership', 60_000);
    // The standby's HTTP port points at the leader.
    const standby = await fetch(`http://127.0.0.1:${httpB}/metrics`);
    expect(standby.status).toBe(503);
    expect(standby.headers.get('location')).toBe(`http://127.0.0.1:${httpA}/metrics`);
    expect(((await standby.json()) as { error: string }).error).toContain(`the leader serves at http://127.0.0.1:${httpA}`);
    daemons.push(await startAgent(url, 'cut1', ['--allow-exec', '--max-tasks', '8', '--heartbeat', '2000']));
    const mesh = await watchMesh(url);
    const req = await Requester.connect(url);
    const before = await req.call<{ state: string }>({
      op: 'submit',
      taskId: 'before-cut',
      spec: { kind: 'exec', argv: ['true'], env: {} },
      requirements: { memory: 0, cpus: 0 },
    });
    expect(before.state).toMatch(/queued|assigned/);

    proxy.blackhole();
    const lost = await a.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('leadership lost'), 10_000);
    expect(await a.exited).toBe(1);
    await b.waitForMsg('controller started', 30_000);
    const ids = Array.from({ length: 10 }, (_, i) => `after-cut-${i}`);
    for (const taskId of ids)
      await req.call(
        { op: 'submit', taskId, spec: { kind: 'exec', argv: ['true'], env: {} }, requirements: { memory: 0, cpus: 0 } },
        15_000,
      );
    for (let waited = 0; waited < 30_000; waited += 250) {
      if (ids.every((id) => (mesh.states.get(id) ?? []).some((s) => s.state === 'succeeded'))) break;
      await sleep(250);
    }
    for (const id of ids) {
      // One end, succeeded, run to success once; no attempt assigned twice (the deposed leader sends none).
      const ends = terminalStates(mesh.states.get(id) ?? []);
      expect(ends.length, `${id}: ${ends.join(', ')}`).toBe(1);
      expect(ends[0]).toMatch(/^succeeded@/);
      expect(mesh.successes.get(id)?.size).toBe(1);
      const assigned = mesh.assigns.get(id) ?? [];
      expect(assigned[0]).toBe(1);
      expect(new Set(assigned).size).toBe(assigned.length);
    }
    // Nothing placed by the cut-off leader once it gave the leadership up.
    const lostAt = lost.time as number;
    expect(a.lines.filter((l) => l.msg === 'task placed' && (l.time as number) > lostAt)).toEqual([]);
    await req.end();
    await mesh.close();
    await b.stop();
    await proxy.close();
  }, 120_000);
});
