/**
 * A service the agent hosts next to task execution (file transfer, image sync): it gets the
 * agent's MQTT client before the CONNACK (to route messages of a persistent session), and is
 * started after the agent's own subscriptions and stopped when the agent leaves.
 */
import type { Writable } from 'node:stream';
import type { MessageRouter, MqttClient } from '../shared/mqtt.js';
import type { CreditGate } from './output-credit.js';

export interface AgentService {
  /** Registers routes and message listeners; called once, before the client connects. */
  attach(client: MqttClient, router: MessageRouter): void;
  /** Subscribes what `attach` routed outside the router (binary topics); called once connected. */
  start?(): Promise<void>;
  /** Closes open files and timers. */
  stop?(): Promise<void>;
  /** A task's container ports were published on the node (docker tasks with `ports`). */
  taskPublished?(taskId: string, attempt: number, ports: { container: number; host: number; server: number }[]): void;
  /** A task attempt started with `stdin` (`-i`) has this stdin stream (agent/stdin.ts feeds it). */
  taskStdin?(taskId: string, attempt: number, stream: Writable, resize?: (rows: number, cols: number) => void): void;
  /** A task attempt started with `credit` holds its output to this gate (agent/output-credit.ts feeds it). */
  taskCredit?(taskId: string, attempt: number, gate: CreditGate): void;
  /** A task attempt ended here (any way). */
  taskEnded?(taskId: string, attempt: number): void;
}
