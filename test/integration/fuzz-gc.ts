/**
 * A daemon's resident memory after a forced full garbage collection, through its inspector
 * (test/integration/fuzz.test.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Daemon } from '../harness.js';

/** Resident memory of a process in KiB (VmRSS from /proc/<pid>/status). @throws when it has none. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a Node process prints on stderr when its inspector is opened and closed (forceGc). */
export const INSPECTOR_NOISE =
  /^(Debugger listening on ws:\/\/\S+|For help, see: \S+|Debugger attached\.|Debugger ending on ws:\/\/\S+)\n?/gm;

/** Minimal typing of the `ws` client (Node 20 has no global WebSocket). */
export type WsClient = { on(ev: string, fn: (arg: unknown) => void): void; send(data: string): void; close(): void };
export const WebSocketCtor = createRequire(import.meta.url)('ws') as new (url: string) => WsClient;

/**
 * Runs a full garbage collection in a daemon, which was started without flags: SIGUSR1 opens its
 * inspector (127.0.0.1:9229), HeapProfiler.collectGarbage collects, and the inspector is closed
 * again. Without it, V8 may leave tens of MiB of garbage uncollected in an idle process, and RSS
 * says nothing about what the process keeps. @returns false when the inspector did not open.
 */
export async function forceGc(d: Daemon): Promise<boolean> {
  const mark = d.stderr.length;
  process.kill(d.child.pid!, 'SIGUSR1');
  const deadline = Date.now() + 5_000;
  let m: RegExpExecArray | null = null;
  while (!(m = /Debugger listening on (ws:\/\/\S+)/.exec(d.stderr.slice(mark)))) {
    if (Date.now() > deadline || /Starting inspector.*failed/.test(d.stderr.slice(mark))) return false;
    await sleep(20);
  }
  const ws = new WebSocketCtor(m[1]);
  try {
    await new Promise((resolve, reject) => (ws.on('open', resolve), ws.on('error', reject)));
    const done = new Promise<void>((resolve) => ws.on('message', (data) => JSON.parse(String(data)).id === 1 && resolve()));
    for (let i = 0; i < 2; i++) {
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
      await done;
    }
    // Closes the inspector (frees the port for the next process); there is no reply to wait for.
    ws.send(JSON.stringify({ id: 2, method: 'Runtime.evaluate', params: { expression: 'setImmediate(() => process._debugEnd())' } }));
    await sleep(300);
    return true;
  } catch {
    return false;
  } finally {
    ws.close();
  }
}

/** RSS after a forced full GC (or, when the inspector cannot open, after up to `waitMs` of idling below `below`). */
export async function settledRss(d: Daemon, below = Infinity, waitMs = 0): Promise<{ kib: number; forced: boolean }> {
  const forced = await forceGc(d);
  await sleep(500);
  let kib = rssKiB(d.child.pid!);
  for (const until = Date.now() + (forced ? 0 : waitMs); kib >= below && Date.now() < until; kib = rssKiB(d.child.pid!)) await sleep(1_000);
  return { kib, forced };
}
