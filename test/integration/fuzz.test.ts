/**
 * Property-based fuzzing (fast-check) of every topic the controller and an agent read, over a real
 * MQTT connection to a real `cutter server` and `cutter agent`.
 *
 * Over 10,000 generated payloads on each topic go out with QoS 1 (the broker acknowledges each) to
 * `nodes/<agent>/status`, `tasks/<id>/events`, `requests/<client>`, `nodes/<agent>/ports/<id>` (read by the controller) and
 * `nodes/<agent>/assign`, `nodes/<agent>/cancel`, `nodes/<agent>/ack` (read by the agent). Generators: random bytes and
 * text, random JSON, near-valid payloads built from the schemas' shapes and then truncated, given a
 * wrong type in one or in every field, stripped of a field, given prototype keys at every object
 * level, unicode edge cases (lone surrogates, NUL, BOM, invalid UTF-8 bytes), odd numbers (1e309,
 * -0, huge ints, NaN-ish tokens and strings), 1,000-10,000 levels of nesting, arrays and objects
 * 1,000-60,000 wide, a few 1-3 MiB payloads, and schema-valid messages whose ids do not match
 * their topic.
 *
 * The test computes each payload's validity with the same zod schema through shared/codec.ts
 * `decode()`, and requires:
 * - both processes stay up, write nothing to stderr, log nothing at error/fatal (no
 *   'message handler failed', no uncaught exception or unhandled rejection);
 * - per topic, the number of 'dropped invalid message' lines (and the sum of their `bytes`) equals
 *   the number (and total size) of the invalid payloads sent there;
 * - each valid-but-lying message gets its own log line (status/event id mismatch, unknown task,
 *   cancel for a task not running here);
 * - RSS of both processes, measured after a forced full GC (through the inspector, opened with
 *   SIGUSR1 and closed again), comes back to within 64 MiB of its baseline;
 * - a task still runs end to end afterwards.
 *
 * Nothing valid is ever sent to `requests/…` or `nodes/…/assign` (generated payloads that decode
 * there are discarded), and the near-valid bases only name harmless things (`true`, an unknown
 * node, a run id the agent does not have) in case one ever slipped through. Empty payloads are not
 * generated: an empty payload is a cleared retained message and is ignored by design.
 *
 * FUZZ_SEED=<n> replays a run (the seed is printed at the start).
 */
import * as fc from 'fast-check';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode } from '../../shared/codec.js';
import { ReplySchema } from '../../shared/schemas/index.js';
import { cli, startAgent, startServer, type Daemon } from '../harness.js';
import { t, AGENT, CLIENT, BATCHES, BATCH_SIZE, HUGE_PER_TOPIC, MIB, SEED } from './fuzz-json.js';
import { type Who, TARGETS, type Case, caseArbFor, fixedCases, hugeArb, Tally, lieKey } from './fuzz-cases.js';
import { rssKiB, sleep, settledRss } from './fuzz-gc.js';

describe('fuzzing every topic the controller and the agent read', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let raw: mqtt.MqttClient;
  let tallies: Record<Who, Tally>;
  const expected = new Map<string, number>(); // tally key -> count
  const expectedBytes = new Map<string, number>();
  const sentBy = new Map<string, { sent: number; invalid: number; bytes: number }>();
  const kinds = new Map<string, number>();
  const replies = { total: 0, invalid: 0, firstInvalid: '' };
  let baseline: Record<Who, number>;

  beforeAll(async () => {
    // The fuzzer publishes far faster than a client may send requests: lift the broker's cap.
    // At debug every drop is logged (the test accounts for each payload); at warn, the drops are
    // rate-limited (shared/warn-limiter.ts): that bound is asserted too.
    ({ daemon: server, url } = await startServer(['--broker-requests-per-minute', '100000000', '--log-level', 'debug']));
    agent = await startAgent(url, AGENT, ['--allow-exec', '--log-level', 'debug']);
    tallies = { server: new Tally(server), agent: new Tally(agent) };
    raw = await mqtt.connectAsync(url, { clientId: 'cutter-fuzz-raw', reconnectPeriod: 0 });
    // Replies to invalid requests that carry an id come back here; they are checked against ReplySchema.
    raw.on('message', (topic, payload) => {
      if (topic !== t.replies(CLIENT)) return;
      replies.total++;
      const d = decode(ReplySchema, payload);
      if (!d.ok) {
        replies.invalid++;
        replies.firstInvalid ||= `${d.error.slice(0, 200)} (${payload.length} bytes)`;
      }
    });
    await raw.subscribeAsync(t.replies(CLIENT), { qos: 1 });
    await sleep(2_000);
    // One process at a time: both would want the inspector's port.
    const s = await settledRss(server);
    const a = await settledRss(agent);
    baseline = { server: s.kib, agent: a.kib };
    console.log(
      `fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}); baseline RSS server ${s.kib} KiB, agent ${a.kib} KiB${s.forced && a.forced ? ' (after a forced full GC)' : ' (no forced GC: inspector did not open)'}`,
    );
  });

  afterAll(async () => {
    // Forced: after a failed run, QoS 1 publishes may still wait for acknowledgements.
    raw?.end(true);
    await agent?.stop();
    await server?.stop();
  });

  function record(c: Case): void {
    const k = c.valid ? lieKey(c) : `drop ${c.target.topic}`;
    expected.set(k, (expected.get(k) ?? 0) + 1);
    if (!c.valid) expectedBytes.set(k, (expectedBytes.get(k) ?? 0) + c.payload.length);
    const s = sentBy.get(c.target.key) ?? { sent: 0, invalid: 0, bytes: 0 };
    s.sent++;
    s.invalid += c.valid ? 0 : 1;
    s.bytes += c.payload.length;
    sentBy.set(c.target.key, s);
    kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
  }

  function whoLogs(key: string): Tally {
    const target = TARGETS.find((x) => key === `drop ${x.topic}` || key === `lie ${x.key}`)!;
    return tallies[target.who];
  }

  /** Mismatches between what was sent and what was logged; empty when they agree. */
  function mismatches(exact: boolean): string[] {
    const out: string[] = [];
    for (const [key, want] of expected) {
      const tally = whoLogs(key).update();
      const got = tally.count(key);
      if (exact ? got !== want : got < want) out.push(`${key}: ${got} log lines, ${want} expected`);
      if (exact && expectedBytes.has(key) && tally.bytes.get(key) !== expectedBytes.get(key))
        out.push(`${key}: ${tally.bytes.get(key)} bytes logged, ${expectedBytes.get(key)} sent`);
    }
    // No drop or lie lines for anything not sent.
    if (exact)
      for (const tally of Object.values(tallies))
        for (const [key, got] of tally.counts) if (!expected.has(key)) out.push(`${key}: ${got} log lines, none expected`);
    return out;
  }

  /** Publishes a batch (QoS 1: each one acknowledged by the broker), then waits for the logs to account for it. */
  async function sendAndCheck(cases: Case[]): Promise<void> {
    await Promise.all(cases.map((c) => raw.publishAsync(c.target.topic, c.payload, { qos: 1 })));
    cases.forEach(record);
    const deadline = Date.now() + 30_000;
    while (mismatches(false).length && Date.now() < deadline) {
      if (tallies.server.trouble().length || tallies.agent.trouble().length) break;
      await sleep(20);
    }
    const trouble = [...tallies.server.trouble(), ...tallies.agent.trouble()];
    const wrong = mismatches(true);
    if (trouble.length || wrong.length) {
      const suspects = cases.filter((c) => wrong.some((w) => w.startsWith(`drop ${c.target.topic}`) || w.startsWith(lieKey(c))));
      throw new Error(
        [
          ...trouble,
          ...wrong,
          'cases in this batch on the affected topics:',
          ...(suspects.length ? suspects : cases).map(
            (c) => `  ${(c as unknown as { [fc.toStringMethod]: () => string })[fc.toStringMethod]()}`,
          ),
        ].join('\n'),
      );
    }
  }

  it(
    `publishes ${BATCHES * BATCH_SIZE + HUGE_PER_TOPIC} generated payloads to each of ${TARGETS.length} topics (and a few fixed ones); every invalid one is logged and dropped, nothing fails`,
    { timeout: 600_000 },
    async () => {
      const started = Date.now();
      await sendAndCheck(fixedCases());
      // A few huge payloads per topic, one at a time.
      for (const target of TARGETS) {
        await fc.assert(
          fc.asyncProperty(hugeArb(target), async (c) => sendAndCheck([c])),
          { seed: SEED, numRuns: HUGE_PER_TOPIC, endOnFailure: true },
        );
      }
      // The bulk: on each topic in turn, batches of generated payloads (BATCHES × BATCH_SIZE each).
      for (const [i, target] of TARGETS.entries()) {
        await fc.assert(
          fc.asyncProperty(fc.array(caseArbFor(target), { minLength: BATCH_SIZE, maxLength: BATCH_SIZE }), async (cases) =>
            sendAndCheck(cases),
          ),
          { seed: SEED + i, numRuns: BATCHES, endOnFailure: true },
        );
      }
      // Nothing late, nothing extra.
      await sleep(1_000);
      expect([...tallies.server.trouble(), ...tallies.agent.trouble()]).toEqual([]);
      expect(mismatches(true)).toEqual([]);

      const total = [...sentBy.values()].reduce((a, s) => a + s.sent, 0);
      console.log(`fuzz: ${total} payloads in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      for (const target of TARGETS) {
        const s = sentBy.get(target.key)!;
        const dropped = tallies[target.who].count(`drop ${target.topic}`);
        console.log(
          `  ${target.topic}: ${s.sent} sent (${(s.bytes / MIB).toFixed(1)} MiB), ${s.invalid} invalid, ${dropped} 'dropped invalid message', ${s.sent - s.invalid} valid with wrong ids -> ${tallies[target.who].count(`lie ${target.key}`)} logged`,
        );
      }
      console.log(
        `  by generator: ${[...kinds]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
      );
      // Reported, not asserted: the controller echoes the first zod issue's path, which holds a record
      // key of any length, so an INVALID_REQUEST reply can exceed ReplyErrorSchema's 8,000 characters.
      console.log(
        `  replies to invalid requests: ${replies.total}, of which ${replies.invalid} do not pass ReplySchema${replies.firstInvalid ? ` (first: ${replies.firstInvalid})` : ''}`,
      );
      for (const target of TARGETS) expect(sentBy.get(target.key)!.sent).toBeGreaterThanOrEqual(10_000);
      // Bounded log: at warn, at most one line per kind and 10 s interval plus one summary each.
      const intervals = Math.ceil((Date.now() - started) / 10_000) + 1;
      for (const d of [server, agent]) {
        const warns = d.lines.filter((l) => l.level === 40 && l.kind === 'invalid-message').length;
        console.log(`  ${d.name}: ${warns} rate-limited warn lines for ${intervals} intervals`);
        expect(warns).toBeLessThanOrEqual(2 * intervals + 2);
      }
      for (const target of TARGETS) expect(sentBy.get(target.key)!.invalid).toBeGreaterThan(0);
    },
    400_000,
  ); // ~10-20 s alone; a CI machine busy with other test files can be several times slower.

  it('memory comes back to its baseline', async () => {
    const limit = 64 * 1024;
    await sleep(3_000);
    const idle = { server: rssKiB(server.child.pid!), agent: rssKiB(agent.child.pid!) };
    const s = await settledRss(server, baseline.server + limit, 20_000);
    const a = await settledRss(agent, baseline.agent + limit, 20_000);
    const how = (x: { forced: boolean }) => (x.forced ? 'after a forced full GC' : 'no forced GC: inspector did not open');
    console.log(
      `RSS server: ${baseline.server} KiB before, ${idle.server} KiB after 3 s idle, ${s.kib} KiB ${how(s)} (${((s.kib - baseline.server) / 1024).toFixed(1)} MiB more); ` +
        `agent: ${baseline.agent} KiB before, ${idle.agent} KiB after 3 s idle, ${a.kib} KiB ${how(a)} (${((a.kib - baseline.agent) / 1024).toFixed(1)} MiB more)`,
    );
    expect(s.kib).toBeLessThan(baseline.server + limit);
    expect(a.kib).toBeLessThan(baseline.agent + limit);
  }, 60_000);

  it('both processes are still up and a task still runs end to end', async () => {
    expect([...tallies.server.trouble(), ...tallies.agent.trouble()]).toEqual([]);
    const nodes = await cli(['nodes', 'list', '--json'], { broker: url });
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(JSON.parse(nodes.stdout).find((n: { node: string }) => n.node === AGENT).state).toBe('online');
    const r = await cli(['run', '--node', AGENT, 'exec', '--', 'echo', 'ok'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ok\n');
    expect([...tallies.server.trouble(), ...tallies.agent.trouble()]).toEqual([]);
  }, 60_000);
});
