/**
 * Leader takeover with PostgreSQL state (issue 20), over repeated kills with real processes: two
 * `cutter server --state postgres://… --broker <Mosquitto>` share a throwaway PostgreSQL cluster
 * (scripts/postgres.ts); the leader is SIGKILLed, and the time is taken from the signal until
 *  (a) the standby's controller announces itself online (its retained controller status), and
 *  (b) a client's request (task.list, sent every 50 ms) is answered again — what a user notices.
 * The killed server is started again as the next standby, so every trial kills a leader.
 * Mode SIGKILL: the leader's database session ends with it, and a standby takes over at once.
 * Mode SIGSTOP: a frozen leader (or one cut off by the network) keeps its session open, so a
 * standby waits until the lease runs out; the frozen one is SIGKILLed after the trial.
 * Run alone: `npm run build && node dist/bench/takeover.js` (BENCH_TAKEOVER_TRIALS, BENCH_QUICK).
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startMosquitto } from '../scripts/mosquitto.js';
import { startPostgres } from '../scripts/postgres.js';
import { freePort, startDaemon } from '../scripts/procs.js';
import { topics } from '../shared/topics.js';
import { median, quantile } from './proc-stats.js';

/** The lease the servers run with, ms (the default of `--leader-lease`). */
export const TAKEOVER_LEASE_MS = 3_000;

export interface TakeoverResult {
  mode: 'SIGKILL' | 'SIGSTOP';
  trials: number;
  /** SIGKILL → the new leader's controller status online, ms. */
  onlineMs: number[];
  /** SIGKILL → the first answered request, ms. */
  answeredMs: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `trials` kills of the leader.
 * @throws when PostgreSQL or Mosquitto is missing, or a server does not start.
 */
export async function measureTakeover(trials: number, mode: TakeoverResult['mode'] = 'SIGKILL'): Promise<TakeoverResult> {
  const pg = await startPostgres();
  const mosquitto = await startMosquitto(await freePort());
  const children: ChildProcess[] = [];
  const t = topics();
  const clientId = `bench-takeover-${randomBytes(3).toString('hex')}`;
  const client = await mqtt.connectAsync(mosquitto.url, { clientId, reconnectPeriod: 200 });
  try {
    const state = await pg.createDatabase('takeover');
    const env = { ...process.env, CUTTER_LOG_LEVEL: 'info', CUTTER_HTTP_PORT: '0', CUTTER_OLLAMA_API: 'false' };
    const server = (ready: string) =>
      startDaemon(
        ['server', '--broker', mosquitto.url, '--state', state, '--data-dir', mkdtempSync(join(tmpdir(), 'cutter-bench-ha-'))],
        ready,
        env,
      );
    let leader = await server('controller started');
    children.push(leader);
    let standby = await server('standing by for the leadership');
    children.push(standby);

    let onlineAt = 0;
    let answeredAt = 0;
    let killedAt = 0;
    const pending = new Set<string>();
    client.on('message', (topic, payload) => {
      if (payload.length === 0) return;
      const msg = JSON.parse(payload.toString()) as { state?: string; ts?: number; id?: string };
      if (topic === t.controllerStatus() && msg.state === 'online' && (msg.ts ?? 0) > killedAt && !onlineAt) onlineAt = Date.now();
      if (topic === t.replies(clientId) && msg.id && pending.has(msg.id) && !answeredAt) answeredAt = Date.now();
    });
    await client.subscribeAsync([t.controllerStatus(), t.replies(clientId)], { qos: 1 });

    const result: TakeoverResult = { mode, trials, onlineMs: [], answeredMs: [] };
    for (let n = 0; n < trials; n++) {
      onlineAt = 0;
      answeredAt = 0;
      pending.clear();
      killedAt = Date.now();
      leader.kill(mode);
      let i = 0;
      while ((!onlineAt || !answeredAt) && Date.now() - killedAt < 30_000) {
        const id = `q${n}-${i++}`;
        pending.add(id);
        client.publish(t.requests(clientId), JSON.stringify({ v: 1, id, op: 'task.list', limit: 1 }), { qos: 1 });
        await sleep(50);
      }
      if (!onlineAt || !answeredAt) throw new Error(`trial ${n + 1}: no new leader within 30 s of the kill`);
      result.onlineMs.push(onlineAt - killedAt);
      result.answeredMs.push(answeredAt - killedAt);
      process.stderr.write(
        `takeover (${mode}) ${n + 1}/${trials}: online after ${onlineAt - killedAt} ms, answering after ${answeredAt - killedAt} ms\n`,
      );
      if (mode === 'SIGSTOP') leader.kill('SIGKILL');
      leader = standby;
      standby = await server('standing by for the leadership');
      children.push(standby);
    }
    return result;
  } finally {
    await client.endAsync().catch(() => undefined);
    for (const c of children) c.kill('SIGKILL');
    await mosquitto.stop();
    await pg.stop();
  }
}

/** p50 and p95 of a list, for the report. */
export function takeoverSummary(xs: number[]): string {
  return `p50 ${median(xs)} ms, p95 ${quantile(xs, 0.95)} ms`;
}

if (process.argv[1]?.endsWith('takeover.js')) {
  const trials = Number(process.env.BENCH_TAKEOVER_TRIALS ?? (process.env.BENCH_QUICK === '1' ? 2 : 10));
  (async () => {
    for (const mode of ['SIGKILL', 'SIGSTOP'] as const) {
      const r = await measureTakeover(trials, mode);
      process.stdout.write(
        `leader ${mode}, ${r.trials} trials (lease ${TAKEOVER_LEASE_MS} ms): controller online ${takeoverSummary(r.onlineMs)}; requests answered ${takeoverSummary(r.answeredMs)}\n`,
      );
    }
  })()
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      process.stderr.write(`takeover bench failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
