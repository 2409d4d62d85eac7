/**
 * The agent's side of "committed before acknowledged" (agent/task-events.ts): a final event is
 * kept until the controller acks it, sent again (same seq) on resend, listed as `finished` in the
 * node status meanwhile, and given up oldest first past MAX_UNACKED.
 */
import { describe, expect, it } from 'vitest';
import { MAX_UNACKED, newAttempt, TaskEvents } from '../../agent/task-events.js';
import type { MqttClient } from '../../shared/mqtt.js';
import { topics } from '../../shared/topics.js';

const t = topics('cutter');

function setup() {
  const sent: { topic: string; body: Record<string, unknown> }[] = [];
  const client = {
    publishAsync: async (topic: string, payload: string) => {
      sent.push({ topic, body: JSON.parse(payload) as Record<string, unknown> });
    },
  } as unknown as MqttClient;
  const events = new TaskEvents('n1', t, []);
  events.attach(client);
  return { events, sent };
}

const result = { type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 2 } as const;

describe('unacknowledged final events on the agent', () => {
  it('keeps a result until its ack, re-sends it unchanged and lists it as finished', async () => {
    const { events, sent } = setup();
    const task = newAttempt('t1', 3, 0, false);
    await events.publish(task, { type: 'log', stream: 'stdout', data: 'x' });
    await events.publish(task, result);
    expect(events.finished()).toEqual([{ taskId: 't1', attempt: 3 }]);

    events.resend(60_000); // sent just now: not yet
    expect(sent).toHaveLength(2);
    events.resend();
    expect(sent).toHaveLength(3);
    expect(sent[2]).toEqual(sent[1]);
    expect(sent[2].topic).toBe(t.taskEvents('t1'));

    events.onAck({ v: 1, acks: [{ taskId: 't1', attempt: 2 }] }); // another attempt: still kept
    expect(events.finished()).toHaveLength(1);
    events.onAck({ v: 1, acks: [{ taskId: 't1', attempt: 3 }] });
    expect(events.finished()).toEqual([]);
    events.resend();
    expect(sent).toHaveLength(3);
  });

  it('keeps a refusal (failed) too, and gives up the oldest past the bound', async () => {
    const { events } = setup();
    const given: string[] = [];
    events.onGiveUp = (taskId) => given.push(taskId);
    for (let i = 0; i <= MAX_UNACKED; i++)
      await events.publish(newAttempt(`t${i}`, 1, 0, false), { type: 'failed', code: 'NODE_BUSY', message: 'busy' });
    expect(events.finished()).toHaveLength(MAX_UNACKED);
    expect(given).toEqual(['t0']);
    expect(events.finished()[0]).toEqual({ taskId: 't1', attempt: 1 });
  });
});
