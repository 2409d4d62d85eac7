/**
 * Helpers for the fault tests that need more than the harness gives: spawning cutter daemons with
 * arguments of our own (a server on 0.0.0.0, an agent inside a network namespace) and a network
 * namespace joined to the root namespace by a veth pair, whose link can be cut and restored.
 *
 * The namespace is `cutter-t-<pid>-<x>`, its veth pair `ct<pid>r` (root side, 10.213.<x>.1/30)
 * and `ct<pid>n` (namespace side, 10.213.<x>.2/30). A `blackhole` route for the /30 with a high
 * metric stays in the root namespace while the namespace exists: when the root-side link is down
 * the kernel drops its connected route, and without the blackhole the broker's packets to .2 would
 * follow the default route out of the machine. With it they vanish silently — a real partition.
 *
 * Also a raw request/reply client (the protocol `cutter` speaks, without a process per call) for
 * fast polling and bulk submits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../shared/topics.js';
import { CUTTER, Daemon, ISOLATED_ENV } from './harness.js';

export { ISOLATED_ENV };

/** Spawns `cutter …` (optionally behind a prefix such as `ip netns exec NS`) as a Daemon. */
export function spawnCutterDaemon(args: string[], name: string, opts: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}): Daemon {
  const argv = [...(opts.prefix ?? []), process.execPath, CUTTER, ...args];
  const child: ChildProcess = spawn(argv[0], argv.slice(1), { env: { ...ISOLATED_ENV, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Daemon(child, name);
}

/** Runs a command to completion; throws with its stderr when it fails (unless `check` is false). */
export function run(cmd: string, args: string[], check = true): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (check && r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

const NS_RE = /^cutter-t-(\d+)-(\d+)$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes namespaces (and their blackhole routes) left by an earlier run of these tests whose
 * process is gone (a run killed before its afterAll). Only names of our own scheme are touched.
 */
function removeLeftovers(): void {
  const list = run('ip', ['netns', 'list'], false).stdout;
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = NS_RE.exec(name ?? '');
    if (!m || alive(Number(m[1]))) continue;
    for (const pid of run('ip', ['netns', 'pids', name], false).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    run('ip', ['netns', 'del', name], false);
    run('ip', ['link', 'del', `ct${m[1]}r`], false);
    run('ip', ['route', 'del', 'blackhole', `10.213.${m[2]}.0/30`], false);
  }
}

/**
 * Whether this process can create network namespaces: root, `ip` present, and a throwaway
 * `ip netns add` succeeds. Cleans up leftovers of killed earlier runs on the way.
 */
export function probeNetns(): { ok: boolean; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'not running as root' };
  const probe = `cutter-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error) return { ok: false, why: `cannot run ip: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, why: `ip netns add failed: ${r.stderr.trim()}` };
  run('ip', ['netns', 'del', probe], false);
  removeLeftovers();
  return { ok: true, why: '' };
}

/** A network namespace joined to the root namespace by a veth pair. */
export class VethNamespace {
  readonly name: string;
  readonly rootIf: string;
  readonly nsIf: string;
  /** The root side's address: what processes in the namespace dial to reach the root namespace. */
  readonly rootAddr: string;
  readonly nsAddr: string;
  readonly subnet: string;
  private created = false;

  constructor() {
    // A /30 in 10.213.0.0/16 that no route on this machine covers yet.
    const routes = run('ip', ['-4', 'route', 'show', 'table', 'all'], false).stdout;
    let x = process.pid % 250;
    while (routes.includes(`10.213.${x}.`)) x = (x + 1) % 250;
    this.name = `cutter-t-${process.pid}-${x}`;
    this.rootIf = `ct${process.pid}r`.slice(0, 15);
    this.nsIf = `ct${process.pid}n`.slice(0, 15);
    this.rootAddr = `10.213.${x}.1`;
    this.nsAddr = `10.213.${x}.2`;
    this.subnet = `10.213.${x}.0/30`;
  }

  /** Creates the namespace, the veth pair, the addresses and the blackhole fallback route. */
  create(): void {
    this.created = true;
    run('ip', ['netns', 'add', this.name]);
    run('ip', ['link', 'add', this.rootIf, 'type', 'veth', 'peer', 'name', this.nsIf]);
    run('ip', ['link', 'set', this.nsIf, 'netns', this.name]);
    run('ip', ['addr', 'add', `${this.rootAddr}/30`, 'dev', this.rootIf]);
    run('ip', ['route', 'add', 'blackhole', this.subnet, 'metric', '4000']);
    run('ip', ['link', 'set', this.rootIf, 'up']);
    run('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', this.name, 'addr', 'add', `${this.nsAddr}/30`, 'dev', this.nsIf]);
    run('ip', ['-n', this.name, 'link', 'set', this.nsIf, 'up']);
  }

  /** argv prefix that runs a command inside the namespace. */
  get exec(): string[] {
    return ['ip', 'netns', 'exec', this.name];
  }

  /** Cuts the link (root side down): packets in both directions are dropped. */
  cut(): void {
    run('ip', ['link', 'set', this.rootIf, 'down']);
  }

  /** Restores the link. */
  heal(): void {
    run('ip', ['link', 'set', this.rootIf, 'up']);
  }

  /** Kills whatever still runs inside the namespace, removes it, the veth pair and the route. Never throws. */
  destroy(): void {
    if (!this.created) return;
    for (const pid of run('ip', ['netns', 'pids', this.name], false).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    run('ip', ['netns', 'del', this.name], false);
    run('ip', ['link', 'del', this.rootIf], false); // normally gone with the namespace's peer
    run('ip', ['route', 'del', 'blackhole', this.subnet], false);
    this.created = false;
  }
}

export type Reply =
  | { v: 1; id: string; ok: true; result: unknown }
  | { v: 1; id: string; ok: false; error: { code: string; message: string } };

/** One MQTT client speaking the request protocol (requests/{client} → replies/{client}, matched by id). */
export class Requester {
  readonly t = topics();
  private readonly pending = new Map<string, (r: Reply) => void>();
  private next = 0;

  private constructor(
    readonly client: MqttClient,
    readonly clientId: string,
  ) {
    client.on('message', (topic, payload) => {
      if (topic !== this.t.replies(clientId) || payload.length === 0) return;
      const reply = JSON.parse(payload.toString('utf8')) as Reply;
      const resolve = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      resolve?.(reply);
    });
  }

  static async connect(url: string): Promise<Requester> {
    const clientId = `test-${randomBytes(4).toString('hex')}`;
    const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 500 });
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    await client.subscribeAsync(topics().replies(clientId), { qos: 1 });
    return new Requester(client, clientId);
  }

  /** Sends a request (QoS 1) and resolves with its reply; rejects after `timeoutMs`. */
  request(body: Record<string, unknown>, timeoutMs = 10_000): Promise<Reply> {
    const id = typeof body.id === 'string' ? body.id : `r${++this.next}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${String(body.op)} ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (r) => (clearTimeout(timer), resolve(r)));
      this.client.publishAsync(this.t.requests(this.clientId), JSON.stringify({ v: 1, ...body, id }), { qos: 1 }).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err as Error);
      });
    });
  }

  /** Like request() but returns the result, throwing on an error reply. */
  async call<T>(body: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    const r = await this.request(body, timeoutMs);
    if (!r.ok) throw new Error(`${String(body.op)}: ${r.error.code}: ${r.error.message}`);
    return r.result as T;
  }

  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}
