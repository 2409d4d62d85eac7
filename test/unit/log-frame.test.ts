/**
 * shared/log-frame.ts: task output as binary frames. The bytes come back exactly, a frame reads as
 * the same event as its JSON form everywhere (JSON, storage, the broker's ACL), and a bad frame is
 * refused with a reason, never thrown on.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AclContext, denyPublish, quarantineOf } from '../../broker/acl.js';
import { StateStore } from '../../controller/state-store.js';
import { type LogEvent, logBytes, logFields, logSize } from '../../shared/log-data.js';
import {
  decodeLogFrame,
  decodeTaskEvent,
  encodeLogFrame,
  fromStoredForm,
  LOG_FRAME_MAX_HEADER,
  type LogHeader,
  storedForm,
} from '../../shared/log-frame.js';
import { TaskEventSchema } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';

const header = (seq = 0, over: Partial<LogHeader> = {}): LogHeader => ({
  v: 1,
  taskId: 't1',
  attempt: 1,
  node: 'n1',
  seq,
  ts: 1_700_000_000_000,
  type: 'log',
  stream: 'stdout',
  ...over,
});

describe('log frames', () => {
  it('give back the exact bytes for every size from 0 to 300 and for 768 KiB of random bytes', () => {
    const sizes = [...Array.from({ length: 301 }, (_, n) => n), 768 * 1024];
    for (const n of sizes) {
      const bytes = n > 300 ? randomBytes(n) : Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) % 256));
      const d = decodeTaskEvent(encodeLogFrame(header(n), bytes));
      expect(d.ok).toBe(true);
      const e = (d as { value: LogEvent }).value;
      expect(logBytes(e).equals(bytes)).toBe(true);
      expect(logSize(e)).toBe(n);
      expect(e).toMatchObject({ type: 'log', stream: 'stdout', seq: n, node: 'n1', attempt: 1 });
    }
  });

  it('read as the same event as its JSON form: JSON.stringify gives base64 data that the schema accepts', () => {
    const bytes = randomBytes(1000);
    const framed = (decodeLogFrame(encodeLogFrame(header(3, { stream: 'stderr' }), bytes)) as { value: LogEvent }).value;
    const json = { ...header(3, { stream: 'stderr' }), ...logFields(bytes) };
    expect(JSON.parse(JSON.stringify(framed))).toEqual(json);
    expect(TaskEventSchema.parse(JSON.parse(JSON.stringify(framed)))).toEqual(json);
    expect({ ...framed }).toEqual(json);
  });

  it('refuse what is not a well-formed frame, saying why', () => {
    const good = encodeLogFrame(header(), Buffer.from('hi'));
    const cases: [string, Buffer][] = [
      ['too short', Buffer.from([0, 1])],
      ['version', Buffer.concat([Buffer.from([0, 2]), good.subarray(2)])],
      ['header length past the frame', Buffer.from([0, 1, 0x03, 0xff, 0x7b])],
      ['header over its limit', Buffer.concat([Buffer.from([0, 1, 0x04, 0x01]), Buffer.alloc(LOG_FRAME_MAX_HEADER + 1, 0x20)])],
      ['header not JSON', Buffer.concat([Buffer.from([0, 1, 0, 3]), Buffer.from('{x}')])],
      ['another type', frameWith({ ...header(), type: 'result' })],
      ['a bad stream', frameWith({ ...header(), stream: 'stdin' })],
      ['a missing node', frameWith({ ...header(), node: undefined })],
      ['too deep', frameWith({ ...header(), extra: [[[[1]]]] })],
      ['too much data', encodeWithoutCheck(header(), Buffer.alloc(768 * 1024 + 1))],
    ];
    for (const [why, frame] of cases) {
      const d = decodeTaskEvent(frame);
      expect(d.ok, why).toBe(false);
      expect((d as { error: string }).error.length, why).toBeGreaterThan(0);
    }
    expect(() => encodeLogFrame(header(), Buffer.alloc(768 * 1024 + 1))).toThrow(RangeError);
    expect(() => encodeLogFrame(header(0, { node: 'x'.repeat(2000) }), Buffer.alloc(1))).toThrow(RangeError);
  });

  it('still decode JSON events on the same topic', () => {
    const json = Buffer.from(JSON.stringify({ ...header(), ...logFields(Buffer.from('ok')) }));
    const d = decodeTaskEvent(json);
    expect(d.ok && logBytes(d.value as LogEvent).toString()).toBe('ok');
    expect(decodeTaskEvent(Buffer.from('{"v":1}')).ok).toBe(false);
  });

  it('are stored as a BLOB and read back from the state store byte for byte, JSON events beside them', () => {
    const store = new StateStore(mkdtempSync(join(tmpdir(), 'cutter-frames-')), { statfs: () => 10 * 1024 ** 3 });
    const bytes = randomBytes(5000);
    const framed = (decodeLogFrame(encodeLogFrame(header(0), bytes)) as { value: LogEvent }).value;
    expect(Buffer.isBuffer(storedForm(framed))).toBe(true);
    expect(logBytes(fromStoredForm(storedForm(framed)) as LogEvent).equals(bytes)).toBe(true);
    store.appendEvent(framed, 1024 * 1024);
    store.appendEvent({ ...header(1, { stream: 'stderr' }), ...logFields(Buffer.from([0xff, 0x00])) }, 1024 * 1024);
    store.commit();
    const { events } = store.events('t1');
    expect(events.map((e) => logBytes(e as LogEvent))).toEqual([bytes, Buffer.from([0xff, 0x00])]);
    // Frames cut by the output limit read back as the head and the tail of the stream, exactly.
    const stream = randomBytes(12_000);
    for (let i = 0; i < 3; i++) {
      const frame = encodeLogFrame(header(i, { taskId: 't2' }), stream.subarray(i * 4000, (i + 1) * 4000));
      store.appendEvent((decodeLogFrame(frame) as { value: LogEvent }).value, 6000);
    }
    store.commit();
    const kept = Buffer.concat(store.events('t2').events.map((e) => logBytes(e as LogEvent)));
    expect(kept.equals(Buffer.concat([stream.subarray(0, 3000), stream.subarray(9000)]))).toBe(true);
    store.close();
  });

  it("pass the broker's ACL by the node and attempt in their header", () => {
    const t = topics();
    const agent = { username: 'agent:n1', role: 'agent' as const, name: 'n1' };
    const ctx: AclContext = {
      t,
      assignmentOf: (task) => (task === 't1' ? { node: 'n1', attempt: 1, state: 'running', ports: [] } : undefined),
    };
    const frame = encodeLogFrame(header(), Buffer.from('x'));
    expect(denyPublish(agent, 'cutter-agent-n1', t.taskEvents('t1'), frame, ctx)).toBeNull();
    expect(quarantineOf(agent, t.taskEvents('t1'), frame, ctx)).toBeNull();
    expect(quarantineOf(agent, t.taskEvents('t1'), encodeLogFrame(header(0, { attempt: 2 }), Buffer.from('x')), ctx)?.why).toContain(
      'attempt 2',
    );
    expect(
      denyPublish(agent, 'cutter-agent-n1', t.taskEvents('t1'), encodeLogFrame(header(0, { node: 'n2' }), Buffer.from('x')), ctx),
    ).not.toBeNull();
  });
});

/** A frame around any JSON header (the encoder only takes valid ones). */
function frameWith(head: Record<string, unknown>): Buffer {
  const h = Buffer.from(JSON.stringify(head));
  const prefix = Buffer.from([0, 1, 0, 0]);
  prefix.writeUInt16BE(h.length, 2);
  return Buffer.concat([prefix, h, Buffer.from('data')]);
}

function encodeWithoutCheck(head: LogHeader, data: Buffer): Buffer {
  return Buffer.concat([frameWith(head as unknown as Record<string, unknown>).subarray(0, -4), data]);
}
