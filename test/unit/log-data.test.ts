/**
 * shared/log-data.ts: the bytes of log events, base64 (what agents send) and legacy UTF-8 text,
 * and the controller's per-task output limit counted in those bytes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outputOf } from '../../cli/pipeline-runner.js';
import { StateStore } from '../../controller/state-store.js';
import { type LogEvent, logBytes, logFields, logSize, logsText, logText, MAX_LOG_EVENT_BYTES } from '../../shared/log-data.js';
import { TaskEventSchema } from '../../shared/schemas/index.js';

const base = { v: 1 as const, taskId: 't1', attempt: 1, node: 'n1', ts: 1, type: 'log' as const };
let seq = 0;
const ev = (bytes: Buffer, stream: LogEvent['stream'] = 'stdout'): LogEvent => ({ ...base, seq: seq++, stream, ...logFields(bytes) });

describe('log event data', () => {
  it('gives back the exact bytes of a base64 event, for every size from 0 to 300 and every byte value', () => {
    for (let n = 0; n <= 300; n++) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) % 256));
      const e = TaskEventSchema.parse(ev(bytes)) as LogEvent;
      expect(logBytes(e).equals(bytes)).toBe(true);
      expect(logSize(e)).toBe(n);
    }
  });

  it('reads a legacy event without encoding as UTF-8 text', () => {
    const e = TaskEventSchema.parse({ ...base, seq: 0, stream: 'stdout', data: 'héllo\n' }) as LogEvent;
    expect(e.encoding).toBeUndefined();
    expect(logBytes(e).equals(Buffer.from('héllo\n', 'utf8'))).toBe(true);
    expect(logSize(e)).toBe(7);
    expect(logText(e)).toBe('héllo\n');
  });

  it('takes up to MAX_LOG_EVENT_BYTES per event, whose base64 the schema accepts, and refuses more', () => {
    const e = ev(randomBytes(MAX_LOG_EVENT_BYTES));
    expect(TaskEventSchema.safeParse(e).success).toBe(true);
    expect(() => logFields(Buffer.alloc(MAX_LOG_EVENT_BYTES + 1))).toThrow(RangeError);
  });

  it('shows text joined per stream run, so a character split between batches stays whole', () => {
    const euro = Buffer.from('€');
    const events = [
      ev(Buffer.concat([Buffer.from('a'), euro.subarray(0, 1)])),
      ev(euro.subarray(1)),
      ev(Buffer.from('oops\n'), 'stderr'),
      ev(Buffer.from([0xff, 0x0a])),
    ];
    expect(logsText(events)).toBe('a€oops\n\uFFFD\n');
    expect(logsText(events, (s, t) => (s === 'stderr' ? `[stderr] ${t}` : t))).toBe('a€[stderr] oops\n\uFFFD\n');
    expect(logText(events[3])).toBe('\uFFFD\n');
  });
});

describe('pipeline step output', () => {
  it("is the attempt's stdout bytes joined, then decoded: a character split between batches stays whole", () => {
    const euro = Buffer.from('€');
    const events = [
      ev(Buffer.concat([Buffer.from('total: '), euro.subarray(0, 2)])),
      ev(Buffer.from('ignored on stderr'), 'stderr'),
      ev(Buffer.concat([euro.subarray(2), Buffer.from('5\n')])),
    ];
    expect(outputOf(events, 1)).toBe('total: €5\n');
    expect(outputOf(events, 2)).toBe('');
  });
});

describe('StateStore output limit', () => {
  it('counts the decoded bytes of base64 log events against maxLogBytes, not the base64 length', () => {
    const store = new StateStore(mkdtempSync(join(tmpdir(), 'cutter-logbytes-')), { statfs: () => 10 * 1024 ** 3 });
    const chunk = randomBytes(600); // 800 characters of base64
    const events = [0, 1, 2].map((n) => ({ ...ev(chunk), taskId: 'lb', seq: n }));
    // 1,300 bytes: the first 650 and the last 650 of the 1,800 written are kept, 500 dropped between them.
    for (const e of events) expect(store.appendEvent(e, 1_300)).toBe(true);
    store.commit();
    const page = store.events('lb');
    expect(page.truncated).toBe(true);
    const written = Buffer.concat([chunk, chunk, chunk]);
    const kept = Buffer.concat(page.events.map((e) => logBytes(e as LogEvent)));
    expect(kept.equals(Buffer.concat([written.subarray(0, 650), written.subarray(1_150)]))).toBe(true);
    expect(store.output('lb', 1_300).stdout).toEqual({ written: 1_800, kept: 1_300, dropped: 500, droppedFrom: 650, lost: 0 });
  });
});
