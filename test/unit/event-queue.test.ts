/** The bounded buffer behind a task follow's events (shared/client/event-queue.ts). */
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../shared/client/event-queue.js';

type Item = { t: string; n?: number };
const marker = (items: number, bytes: number): Item => ({ t: `dropped ${items}/${bytes}` });

async function readAll(q: EventQueue<Item>): Promise<string[]> {
  const out: string[] = [];
  for await (const i of q) out.push(i.t);
  return out;
}

describe('EventQueue', () => {
  it('hands items on in order and ends after close', async () => {
    const q = new EventQueue<Item>(marker);
    const read = readAll(q);
    q.push({ t: 'a' }, 1, 'droppable');
    q.push({ t: 'b' }, 1, 'keep');
    q.close();
    expect(await read).toEqual(['a', 'b']);
  });

  it('when full, drops output into one marker per gap, keeps lifecycle items and only the newest state', async () => {
    const q = new EventQueue<Item>(marker, { maxItems: 2, maxBytes: 1_000 });
    q.push({ t: 'log1' }, 10, 'droppable');
    q.push({ t: 'state1' }, 10, 'state');
    q.push({ t: 'log2' }, 10, 'droppable'); // full: dropped
    q.push({ t: 'log3' }, 5, 'droppable'); // same gap
    q.push({ t: 'state2' }, 10, 'state'); // full: replaces state1
    q.push({ t: 'result' }, 10, 'keep');
    q.close();
    expect(await readAll(q)).toEqual(['log1', 'dropped 2/15', 'state2', 'result']);
  });

  it('bounds by bytes too', async () => {
    const q = new EventQueue<Item>(marker, { maxItems: 100, maxBytes: 100 });
    q.push({ t: 'big' }, 100, 'droppable');
    q.push({ t: 'small' }, 1, 'droppable');
    q.close();
    expect(await readAll(q)).toEqual(['big', 'dropped 1/1']);
  });

  it('a reader that keeps up never drops', async () => {
    const q = new EventQueue<Item>(marker, { maxItems: 1, maxBytes: 1 });
    const out: string[] = [];
    const reading = (async () => {
      for await (const i of q) out.push(i.t);
    })();
    for (let i = 0; i < 50; i++) {
      q.push({ t: String(i) }, 10, 'droppable');
      await new Promise((r) => setImmediate(r));
    }
    q.close();
    await reading;
    expect(out).toHaveLength(50);
  });
});
