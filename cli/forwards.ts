/** Reading port forward states (shared/schemas/ports.ts) from the broker for `cutter run -p` and `cutter ports`. */
import { decode } from '../shared/codec.js';
import { ForwardStateSchema, type ForwardState } from '../shared/schemas/index.js';
import type { MeshClient as CliClient } from '../shared/client/index.js';

/**
 * Calls `onState` with every ForwardState published for `taskId` (retained, so one published
 * before the subscription arrives too).
 */
export async function watchForwards(client: CliClient, taskId: string, onState: (s: ForwardState) => void): Promise<void> {
  const topic = client.topics.forwardState(taskId);
  client.mqtt.on('message', (tp, payload) => {
    if (tp !== topic || payload.length === 0) return;
    const d = decode(ForwardStateSchema, payload);
    if (d.ok) onState(d.value);
  });
  await client.mqtt.subscribeAsync(topic, { qos: 1 });
}

/**
 * Every retained ForwardState on the broker: subscribes, then waits until `quietMs` pass without a
 * new one (retained messages arrive right after the SUBACK).
 */
export async function listForwards(client: CliClient, quietMs = 300): Promise<ForwardState[]> {
  const filter = client.topics.allForwardState();
  const found = new Map<string, ForwardState>();
  let last = Date.now();
  const onMessage = (tp: string, payload: Buffer) => {
    if (!tp.startsWith(filter.slice(0, -1)) || payload.length === 0) return;
    const d = decode(ForwardStateSchema, payload);
    if (d.ok) found.set(d.value.taskId, d.value);
    last = Date.now();
  };
  client.mqtt.on('message', onMessage);
  await client.mqtt.subscribeAsync(filter, { qos: 1 });
  last = Date.now();
  while (Date.now() - last < quietMs) await new Promise((r) => setTimeout(r, 50));
  client.mqtt.off('message', onMessage);
  return [...found.values()].sort((a, b) => a.ts - b.ts);
}
