/**
 * The state-store contract (controller/state-contract.ts) run with the same assertions against
 * both implementations: SQLite in a temp dir and PostgreSQL in a throwaway cluster
 * (scripts/postgres.ts). What the controller relies on: nothing waits on afterCommit past its
 * commit and nothing runs before it; what was committed is there after a reopen (tasks, events,
 * output accounts, drained nodes); output is kept head and tail within its limit the same way;
 * forgotten tasks are gone. PostgreSQL alone: a store whose term was taken over writes nothing more,
 * and a store cut from its database keeps its writes (and what waits on them) until it answers again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease } from '../../controller/leader-lease.js';
import { PgStateStore } from '../../controller/pg-state-store.js';
import type { StateStoreContract } from '../../controller/state-contract.js';
import { StateStore } from '../../controller/state-store.js';
import { TaskStore } from '../../controller/task-store.js';
import { type TaskEvent, TaskOptionsSchema } from '../../shared/schemas/index.js';
import { type RunningPostgres, startPostgres } from '../../scripts/postgres.js';
import { needs } from '../services.js';
import { tcpProxy } from '../e2e/ha-helpers-pg.js';

const pgService = needs('postgres');
let pg: RunningPostgres | undefined;
let dbs = 0;

beforeAll(async () => {
  if (!pgService.skip) pg = await startPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.stop();
});

/** Opens a store of one backend at a fresh place; `reopen` opens the same place again. */
interface Backend {
  name: string;
  skip: boolean;
  fresh(): Promise<{ open: () => Promise<StateStoreContract> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    skip: false,
    fresh: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cutter-contract-'));
      return { open: async () => new StateStore(dir, { statfs: () => 10 * 1024 ** 3 }) };
    },
  },
  {
    name: `PostgreSQL${pgService.tag}`,
    skip: pgService.skip,
    fresh: async () => {
      const url = await pg!.createDatabase(`contract${++dbs}`);
      return {
        open: async () => {
          const lease = new LeaderLease({ url, holder: `test-${dbs}-${Math.random()}` });
          const term = await lease.tryAcquire();
          await lease.stop().catch(() => undefined);
          // stop() ended the lease, but the term stays the newest: writes under it are accepted.
          return PgStateStore.open(url, { term: term! });
        },
      };
    },
  },
];

const spec = { kind: 'exec' as const, argv: ['true'], env: {} };
const committed = (s: StateStoreContract) => new Promise<void>((resolve) => s.afterCommit(resolve));
const ev = (taskId: string, seq: number, body: Record<string, unknown>, attempt = 1) =>
  ({ v: 1, taskId, attempt, node: 'n1', seq, ts: 1, ...body }) as TaskEvent;
const create = (tasks: TaskStore, id: string, now = 1) =>
  tasks.create({ taskId: id, spec, requirements: { memory: 0, cpus: 0 }, options: TaskOptionsSchema.parse({}), submittedBy: 't', now });

for (const backend of backends) {
  describe.skipIf(backend.skip)(`state-store contract: ${backend.name}`, () => {
    it('says nothing before the commit, runs waiters in order after it, and has every committed task after a reopen', async () => {
      const place = await backend.fresh();
      const store = await place.open();
      const tasks = new TaskStore(store, 100);
      const said: string[] = [];
      store.afterCommit(() => said.push('nothing pending'));
      expect(said).toEqual(['nothing pending']);
      const a = create(tasks, 'a');
      store.afterCommit(() => said.push('a stored'));
      create(tasks, 'b');
      store.afterCommit(() => said.push('b stored'));
      expect(said).toEqual(['nothing pending']);
      await committed(store);
      expect(said).toEqual(['nothing pending', 'a stored', 'b stored']);
      tasks.update(a, { state: 'succeeded', exitCode: 0, finishedAt: 9 }, {}, 9);
      store.setDrained('n1', true);
      store.setDrained('n2', true);
      store.setDrained('n2', false);
      await committed(store);
      await store.close();

      const again = await place.open();
      const loaded = new TaskStore(again, 100);
      expect(loaded.get('a')?.state).toMatchObject({ state: 'succeeded', exitCode: 0, finishedAt: 9 });
      expect(loaded.get('b')?.state.state).toBe('queued');
      expect(loaded.liveTasks().map((r) => r.state.taskId)).toEqual(['b']);
      expect([...again.drainedNodes()]).toEqual(['n1']);
      await again.close();
    });

    it('keeps output head and tail within the limit, pages events, and forgets deleted tasks', async () => {
      const place = await backend.fresh();
      const store = await place.open();
      const tasks = new TaskStore(store, 100);
      create(tasks, 't');
      create(tasks, 'gone');
      // 10 log events of 100 bytes each against a 400-byte limit: 200 bytes of head, 200 of tail.
      const line = `${'x'.repeat(99)}\n`;
      expect(store.appendEvent(ev('t', 0, { type: 'accepted' }), 400)).toBe(true);
      for (let i = 1; i <= 10; i++) store.appendEvent(ev('t', i, { type: 'log', stream: 'stdout', data: line }), 400);
      expect(store.appendEvent(ev('t', 5, { type: 'log', stream: 'stdout', data: line }), 400)).toBe(false); // a redelivery
      store.appendEvent(ev('t', 11, { type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 2 }), 400);
      store.appendEvent(ev('gone', 1, { type: 'log', stream: 'stdout', data: line }), 400);
      await committed(store);
      const out = store.output('t', 400);
      expect(out.stdout).toMatchObject({ written: 1000, kept: 400, dropped: 600, droppedFrom: 200 });
      const page = await store.events('t');
      expect(page.truncated).toBe(true);
      expect(page.events.map((e) => `${e.type}:${e.seq}`)).toEqual(['accepted:0', 'log:1', 'log:2', 'log:9', 'log:10', 'result:11']);
      // Paging: after (1, 2), at most one event per page when each is over the byte budget.
      const next = await store.events('t', { attempt: 1, seq: 2 }, 10);
      expect(next.events.map((e) => e.seq)).toEqual([9]);
      expect(next.more).toBe(true);
      tasks.discard('gone');
      await committed(store);
      await store.close();

      const again = await place.open();
      expect(again.output('t', 400)).toEqual(out);
      expect((await again.events('t')).events.map((e) => e.seq)).toEqual([0, 1, 2, 9, 10, 11]);
      expect((await again.events('gone')).events).toEqual([]);
      expect(again.output('gone', 400).stdout.written).toBe(0);
      expect(again.loadTasks().map((r) => r.state.taskId)).toEqual(['t']);
      await again.close();
    });
  });
}

describe.skipIf(pgService.skip)(`PostgreSQL state store fencing${pgService.tag}`, () => {
  it('refuses every write of a store whose term another server took, and says nothing of it', async () => {
    const url = await pg!.createDatabase('fencing');
    const first = new LeaderLease({ url, holder: 'first', leaseMs: 60_000 });
    const term1 = (await first.tryAcquire())!;
    const fenced: number[] = [];
    const store = await PgStateStore.open(url, { term: term1, onFenced: (e) => fenced.push(e.current) });
    const tasks = new TaskStore(store, 100);
    create(tasks, 'before');
    await committed(store);

    // The first leader's database session ends (as when its process dies): a standby takes over at once.
    await first.stop();
    const second = new LeaderLease({ url, holder: 'second' });
    const term2 = (await second.tryAcquire())!;
    expect(term2).toBe(term1 + 1);
    create(tasks, 'late');
    const said: string[] = [];
    store.afterCommit(() => said.push('late stored'));
    await new Promise((r) => setTimeout(r, 300));
    expect(said).toEqual([]);
    expect(fenced).toEqual([term2]);
    expect(store.guard.refusal()?.code).toBe('STORAGE_UNAVAILABLE');
    expect(store.guard.state).toMatchObject({ state: 'degraded', code: 'FENCED' });

    const next = await PgStateStore.open(url, { term: term2 });
    expect(next.loadTasks().map((r) => r.state.taskId)).toEqual(['before']);
    await Promise.all([store.close(), next.close(), second.stop()]);
  });
});

describe.skipIf(pgService.skip)(`PostgreSQL state store while the database is unreachable${pgService.tag}`, () => {
  it('keeps every write and what waits on it, refuses new work, and commits it all once the database answers again', async () => {
    const url = await pg!.createDatabase('outage');
    const proxy = await tcpProxy(pg!.port);
    const viaProxy = url.replace(`:${pg!.port}/`, `:${proxy.port}/`);
    const lease = new LeaderLease({ url, holder: 'outage', leaseMs: 600_000 });
    const term = (await lease.tryAcquire())!;
    const store = await PgStateStore.open(viaProxy, { term });
    const tasks = new TaskStore(store, 100);
    create(tasks, 'one');
    await committed(store);

    proxy.blackhole();
    const two = create(tasks, 'two');
    tasks.update(two, { state: 'succeeded', exitCode: 0, finishedAt: 5 }, {}, 5);
    const said: string[] = [];
    store.afterCommit(() => said.push('two stored'));
    // The commit hangs on the cut link until its query times out (PG_QUERY_TIMEOUT_MS), then is retried.
    for (let i = 0; i < 100 && !store.failing; i++) await new Promise((r) => setTimeout(r, 100));
    expect(store.failing).toBe(true);
    expect(said).toEqual([]);
    expect(store.guard.refusal()?.message).toContain('cannot be written');

    proxy.heal();
    for (let i = 0; i < 150 && said.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(said).toEqual(['two stored']);
    expect(store.guard.ok).toBe(true);
    await store.close();
    const again = await PgStateStore.open(url, { term });
    expect(new TaskStore(again, 100).get('two')?.state).toMatchObject({ state: 'succeeded', exitCode: 0 });
    await Promise.all([again.close(), lease.stop(), proxy.close()]);
  }, 60_000);
});
