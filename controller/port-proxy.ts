/**
 * The server's end of port forwarding (shared/schemas/ports.ts): for each retained
 * PortAnnouncement it checks that the node's `address:host` answers a TCP connect, then listens
 * on the `server` port and pipes every connection to the node. The outcome is published retained
 * on `forwards/{task}`: `open`, or `refused` with the reason (no address announced — behind NAT —,
 * node port unreachable, server port taken). Forwards close when the announcement is cleared or
 * the task reaches a terminal state. Every open, refusal and close is audited (`port.forward`).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AuditLog } from '../shared/audit.js';
import { encode } from '../shared/codec.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import { PortAnnouncementSchema, TaskStateSchema, isTerminal, type ForwardState, type PortAnnouncement } from '../shared/schemas/index.js';
import { topics } from '../shared/topics.js';
import { connectServerClient, type ServerConnection } from './server-client.js';

export interface PortProxyOptions extends ServerConnection {
  prefix: string;
  /** Interface the forwarded ports listen on (the server's `host`). */
  host: string;
  audit?: AuditLog;
  log: Logger;
  /** How long the reachability check waits for the node, ms. */
  checkTimeoutMs?: number;
}

interface Forward {
  taskId: string;
  node: string;
  attempt: number;
  servers: Server[];
  sockets: Set<Socket>;
  state: ForwardState;
}

/** Resolves when `host:port` accepts a TCP connection; rejects with why not. */
function probe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.end();
      resolve();
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the proxy. @returns a function that closes every forward and disconnects. */
export async function startPortProxy(opts: PortProxyOptions): Promise<() => Promise<void>> {
  const t = topics(opts.prefix);
  const log = opts.log.child({ component: 'port-proxy' });
  const forwards = new Map<string, Forward>();
  let queue: Promise<unknown> = Promise.resolve();
  const serial = (fn: () => Promise<void>) => (queue = queue.then(fn).catch((err) => log.error({ err }, 'port forward handling failed')));
  let client!: MqttClient;

  const publish = (state: ForwardState) =>
    client
      .publishAsync(t.forwardState(state.taskId), encode(state), { qos: 1, retain: true })
      .catch((err) => log.warn({ err }, 'cannot publish forward state'));

  async function close(taskId: string, reason: string): Promise<void> {
    const f = forwards.get(taskId);
    if (!f) return;
    forwards.delete(taskId);
    for (const s of f.sockets) s.destroy();
    await Promise.all(f.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (f.state.state === 'open') {
      log.info({ taskId, node: f.node, reason }, 'port forwards closed');
      opts.audit?.record({
        who: 'controller',
        action: 'port.forward',
        outcome: 'closed',
        taskId,
        node: f.node,
        detail: `${f.state.forwards.map((x) => `${x.server} → ${x.target}`).join(', ')}: ${reason}`,
      });
    }
    // Cleared: `cutter ports` lists what is open now.
    await client.publishAsync(t.forwardState(taskId), '', { qos: 1, retain: true }).catch(() => undefined);
  }

  async function open(a: PortAnnouncement): Promise<void> {
    const existing = forwards.get(a.taskId);
    if (existing && existing.attempt === a.attempt) return;
    if (existing) await close(a.taskId, `attempt ${a.attempt} replaced attempt ${existing.attempt}`);
    const f: Forward = {
      taskId: a.taskId,
      node: a.node,
      attempt: a.attempt,
      servers: [],
      sockets: new Set(),
      state: { v: 1, taskId: a.taskId, node: a.node, state: 'open', forwards: [], ts: Date.now() },
    };
    forwards.set(a.taskId, f);
    const refuse = async (reason: string) => {
      for (const s of f.servers) s.close();
      f.servers = [];
      f.state = { ...f.state, state: 'refused', reason, ts: Date.now() };
      log.warn({ taskId: a.taskId, node: a.node, reason }, 'port forward refused');
      opts.audit?.record({ who: 'controller', action: 'port.forward', outcome: 'refused', taskId: a.taskId, node: a.node, detail: reason });
      await publish(f.state);
    };
    f.state.forwards = a.ports.map((p) => ({
      server: p.server,
      container: p.container,
      target: a.address ? `${a.address}:${p.host}` : `${a.node}:${p.host}`,
    }));
    if (!a.address) {
      return refuse(
        `node ${a.node} announces no address the server can reach (behind NAT?): start its agent with --advertise-address ADDR, or reach the port on the node itself`,
      );
    }
    for (const p of a.ports) {
      try {
        await probe(a.address, p.host, opts.checkTimeoutMs ?? 3_000);
      } catch (err) {
        return refuse(
          `the server cannot reach node ${a.node} at ${a.address}:${p.host} (${errorMessage(err)}): is it behind NAT or a firewall?`,
        );
      }
      const server = createServer((inbound) => {
        const outbound = connect({ host: a.address!, port: p.host });
        f.sockets.add(inbound).add(outbound);
        const drop = () => {
          inbound.destroy();
          outbound.destroy();
          f.sockets.delete(inbound);
          f.sockets.delete(outbound);
        };
        inbound.on('error', drop).on('close', drop);
        outbound.on('error', drop).on('close', drop);
        inbound.pipe(outbound).pipe(inbound);
      });
      try {
        await listen(server, opts.host, p.server);
      } catch (err) {
        return refuse(`server port ${p.server} cannot be opened: ${errorMessage(err)}`);
      }
      f.servers.push(server);
    }
    log.info({ taskId: a.taskId, node: a.node, forwards: f.state.forwards }, 'port forwards open');
    opts.audit?.record({
      who: 'controller',
      action: 'port.forward',
      outcome: 'open',
      taskId: a.taskId,
      node: a.node,
      detail: f.state.forwards.map((x) => `${opts.host}:${x.server} → ${x.target}`).join(', '),
    });
    await publish(f.state);
  }

  client = await connectServerClient('ports', opts, log, (router) => {
    router.route(
      t.allNodePorts(),
      PortAnnouncementSchema,
      (a, topic) => {
        if (topic !== t.nodePorts(a.node, a.taskId)) return;
        serial(() => open(a));
      },
      {
        onEmpty: (topic) => {
          const parsed = t.parse(topic);
          if (parsed?.kind === 'nodePorts') serial(() => close(parsed.task, 'the task ended on its node'));
        },
      },
    );
    router.route(t.allTaskState(), TaskStateSchema, (s) => {
      if (isTerminal(s.state) && forwards.has(s.taskId)) serial(() => close(s.taskId, `the task ${s.state}`));
    });
  });
  return async () => {
    await queue;
    for (const id of [...forwards.keys()]) await close(id, 'server stopping');
    await client.endAsync().catch(() => undefined);
  };
}
