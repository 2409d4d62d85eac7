import { describe, expect, it } from 'vitest';
import { duplexPair } from '../../broker/in-process.js';

describe('in-process duplex pair', () => {
  it('carries bytes both ways in order and ends the peer', async () => {
    const [a, b] = duplexPair();
    const got: string[] = [];
    b.on('data', (c: Buffer) => got.push(c.toString()));
    a.write('one ');
    a.write('two');
    a.end();
    await new Promise((r) => b.once('end', r));
    expect(got.join('')).toBe('one two');
    const back: string[] = [];
    a.on('data', (c: Buffer) => back.push(c.toString()));
    b.write('reply');
    await new Promise((r) => setImmediate(r));
    expect(back).toEqual(['reply']);
  });

  it('holds a writer back while the reader does not read (backpressure), and releases it when it does', async () => {
    const [a, b] = duplexPair();
    let done = 0;
    for (let i = 0; i < 100; i++) a.write(Buffer.alloc(64 * 1024), () => done++);
    await new Promise((r) => setImmediate(r));
    expect(done).toBeLessThan(100); // b's buffer is full and nobody reads it
    b.resume();
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(100);
  });

  it('closes both ends when one is destroyed, failing a pending write', async () => {
    const [a, b] = duplexPair();
    const closed = new Promise((r) => b.once('close', r));
    a.destroy();
    await closed;
    expect(b.destroyed).toBe(true);
    const err = await new Promise<Error | null | undefined>((r) => b.write('x', (e) => r(e)));
    expect(err).toBeTruthy();
  });
});
