/** The controller's event bus (controller/events.ts): a throwing listener is logged with its stack and breaks nothing. */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ControllerEvents } from '../../controller/events.js';

/** A pino logger whose JSON lines land in `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe('ControllerEvents', () => {
  it('logs a throwing listener with its stack and the event, and still calls the other listeners', () => {
    const { log, lines } = capture();
    const bus = new ControllerEvents(log);
    const seen: string[] = [];
    bus.on('node', function brokenExtension() {
      throw new Error('listener bug');
    });
    bus.on('node', (node) => seen.push(node));
    expect(() => bus.emit('node', 'n1')).not.toThrow();
    expect(seen).toEqual(['n1']);
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({
      level: 50,
      msg: 'event listener failed',
      event: 'node',
      listener: 'brokenExtension',
      component: 'events',
    });
    const err = line.err as { message: string; stack: string; type: string };
    expect(err.message).toBe('listener bug');
    expect(err.stack).toMatch(/listener bug\n\s+at brokenExtension/);
  });

  it('a logger given later (useLogger) gets the errors; an unsubscribed listener is not called', () => {
    const { log, lines } = capture();
    const bus = new ControllerEvents();
    bus.useLogger(log);
    const off = bus.on('nodeRemoved', () => {
      throw new TypeError('boom');
    });
    bus.emit('nodeRemoved', 'n2');
    off();
    bus.emit('nodeRemoved', 'n3');
    expect(lines.map((l) => (l.err as { type: string }).type)).toEqual(['TypeError']);
  });
});
