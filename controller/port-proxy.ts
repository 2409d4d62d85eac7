/**
 * The server's end of port forwarding (shared/schemas/ports.ts): for each retained
 * PortAnnouncement it checks that the announcing node holds the task's current attempt and that
 * every forwarded `{server, container}` pair is one the task declared (`spec.ports`), then that the
 * node answers a TCP connect on `host` at the address the server sees its agent connected from (never
 * an address the payload names: that would let an agent token make the server dial anything), then
 * listens on the `server` port of `forwardHost` (loopback by default) and pipes every connection to
 * the node. These checks are the proxy's own, so they hold behind an external broker too, which has
 * no ACL hook (broker/acl.ts quarantines the same messages on the embedded one). The outcome is published retained
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
import type { AssignmentView } from '../broker/acl.js';
import { connectServerClient, type ServerConnection } from './server-client.js';

export interface PortProxyOptions extends ServerConnection {
  prefix: string;
  /** Interface the forwarded ports listen on (`forwardHost`, loopback by default; never the broker's `host`). */
  host: string;
  /** The task's current attempt (controller/controller.ts `assignmentOf`); undefined = unknown task. */
  assignmentOf(taskId: string): AssignmentView | undefined;
  /**
   * The address the server sees node N's agent connected from (the embedded broker's view), or
   * undefined when it cannot see it (an external broker, another instance of a cluster).
   */
  nodeAddress(node: string): string | undefined;
  /**
   * When `nodeAddress` cannot tell (an external broker), dial the address the node announces
   * instead of refusing (server `--forward-trust-announced`). Default false.
   */
  trustAnnounced?: boolean;
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

  /** Why the announcing node may not have these forwards: not its task's current attempt, or a port the task did not declare. */
  function unauthorized(a: PortAnnouncement): string | null {
    const view = opts.assignmentOf(a.taskId);
    if (!view) return `task ${a.taskId} is unknown to the controller`;
    if (view.node !== a.node) return `task ${a.taskId} is not assigned to node ${a.node}`;
    if (view.attempt !== a.attempt) return `attempt ${a.attempt} is not task ${a.taskId}'s current attempt ${view.attempt}`;
    if (view.state !== 'assigned' && view.state !== 'running') return `task ${a.taskId} is ${view.state}`;
    const undeclared = a.ports.filter((p) => !view.ports.some((d) => d.server === p.server && d.container === p.container));
    if (undeclared.length > 0)
      return `task ${a.taskId} did not declare ${undeclared.map((p) => `${p.server}:${p.container}`).join(', ')} (cutter run -p SERVER:CONTAINER)`;
    return null;
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
    const why = unauthorized(a);
    if (why) return refuse(why);
    if (!a.address) {
      return refuse(
        `node ${a.node} announces no address the server can reach (behind NAT?): start its agent with --advertise-address ADDR, or reach the port on the node itself`,
      );
    }
    const address = opts.nodeAddress(a.node) ?? (opts.trustAnnounced ? a.address : undefined);
    if (!address)
      return refuse(
        `the server cannot see node ${a.node}'s connection (an external broker, or another broker of a cluster), so it cannot tell which address is the node's: start the server with --forward-trust-announced to dial the address the node announces`,
      );
    if (address !== a.address)
      return refuse(
        `node ${a.node} announces address ${a.address} but is connected from ${address}: the server dials only the address it sees the node at`,
      );
    for (const p of a.ports) {
      try {
        await probe(address, p.host, opts.checkTimeoutMs ?? 3_000);
      } catch (err) {
        return refuse(
          `the server cannot reach node ${a.node} at ${a.address}:${p.host} (${errorMessage(err)}): is it behind NAT or a firewall?`,
        );
      }
      const server = createServer((inbound) => {
        const outbound = connect({ host: address, port: p.host });
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
