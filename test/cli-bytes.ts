/**
 * The CLI run as a process with its output kept as bytes (tests of byte-exact output: issue 15):
 * `cutterBytes()` collects stdout and stderr as Buffers, `digest()` gives what assertions compare,
 * `taskIdOf()` reads the task id `cutter run` names on stderr.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { CUTTER, ISOLATED_ENV } from './harness.js';

/** What a process wrote, as bytes. */
export interface Captured {
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Runs `cutter ARGS` against `broker` to its end, collecting stdout and stderr as Buffers.
 * @throws Error when it has not finished within `timeoutMs` (it is killed; its stderr is in the message).
 */
export function cutterBytes(args: string[], broker: string, timeoutMs = 60_000): Promise<Captured> {
  const child = spawn(process.execPath, [CUTTER, ...args], {
    env: { ...ISOLATED_ENV, CUTTER_BROKER: broker },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cutter ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${Buffer.concat(err).toString('latin1')}`));
    }, timeoutMs);
    // 'close', not 'exit': the pipes are read to their end.
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
    });
  });
}

/** Length and sha256 of some bytes: what the assertions compare (a mismatch then reads well). */
export const digest = (b: Buffer) => ({ bytes: b.length, sha256: createHash('sha256').update(b).digest('hex') });

/** The task id `cutter run` names on stderr ("cutter: task ID placed on NODE"). @throws Error when there is none. */
export function taskIdOf(stderr: Buffer): string {
  const m = /cutter: task (\S+) placed on/.exec(stderr.toString('latin1'));
  if (!m) throw new Error(`no task id on stderr: ${stderr.toString('latin1').slice(0, 500)}`);
  return m[1];
}
