/**
 * `cutter nodes policy NODE [changes] [--json]` (issue 17): shows a node's lending policy and state,
 * or changes the policy at runtime. A change goes straight to the node's agent as a LendingSet on
 * `cutter/v1/nodes/{node}/lending/set` (admins only, broker/acl.ts; QoS 1, kept for an offline
 * agent by its persistent session, not across agent restarts: the flags and file hold the lasting
 * policy), then waits up to 10 s for the node's status to say it applied it (`lending.applied`).
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { encode } from '../../shared/codec.js';
import { CutterError } from '../../shared/errors.js';
import { describeLending, type LendingPatch, LendingPatchSchema } from '../../shared/lending.js';
import { type LendingSet, NodeListResultSchema, type NodeView } from '../../shared/schemas/index.js';
import { formatBytes, formatDuration, parseBytes } from '../../shared/units.js';
import { DurationSchema } from '../../shared/config/common.js';
import type { MeshClient } from '../../shared/client/mesh-client.js';
import { printJson } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/** How long to wait for the node to say it applied a change, ms. */
const APPLY_WAIT_MS = 10_000;

interface PolicyFlags extends GlobalFlags {
  on?: boolean;
  off?: boolean;
  mode?: string;
  acOnly?: string;
  idleMinutes?: string;
  maxOwnerCpu?: string;
  minFreeMemory?: string;
  window?: string[];
  noWindows?: boolean;
  preemptAfter?: string;
  reset?: boolean;
}

const isOff = (v: string) => v === 'off' || v === 'none';

/**
 * The patch the flags ask for (empty: nothing to change).
 * @throws CutterError INVALID_ARGUMENT naming the flag and what it takes.
 */
export function patchFromFlags(f: PolicyFlags): LendingPatch {
  const bad = (flag: string, want: string) => new CutterError('INVALID_ARGUMENT', `${flag}: ${want}`);
  const num = (flag: string, v: string, max: number) => {
    if (isOff(v)) return null;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > max) throw bad(flag, `give a number 0-${max}, or off`);
    return n;
  };
  const patch: Record<string, unknown> = {};
  if (f.on && f.off) throw bad('--on/--off', 'give one of them');
  if (f.on || f.off) patch.enabled = Boolean(f.on);
  if (f.mode !== undefined) patch.mode = f.mode;
  if (f.acOnly !== undefined) {
    if (!['yes', 'no', 'true', 'false', 'on', 'off'].includes(f.acOnly)) throw bad('--ac-only', 'give yes or no');
    patch.acOnly = ['yes', 'true', 'on'].includes(f.acOnly);
  }
  if (f.idleMinutes !== undefined) patch.idleMinutes = num('--idle-minutes', f.idleMinutes, 10_080);
  if (f.maxOwnerCpu !== undefined) patch.maxOwnerCpuPercent = num('--max-owner-cpu', f.maxOwnerCpu, 100);
  if (f.minFreeMemory !== undefined) {
    try {
      patch.minFreeMemory = isOff(f.minFreeMemory) ? null : parseBytes(f.minFreeMemory);
    } catch (err) {
      throw bad('--min-free-memory', `${(err as Error).message}, or off`);
    }
  }
  if (f.noWindows) patch.windows = null;
  else if (f.window?.length) patch.windows = f.window;
  if (f.preemptAfter !== undefined) {
    const d = DurationSchema.safeParse(f.preemptAfter);
    if (!d.success) throw bad('--preempt-after', 'give a duration like 10m or 30s');
    patch.preemptAfterMs = d.data;
  }
  const parsed = LendingPatchSchema.safeParse(patch);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw bad(`--${String(i.path[0] ?? 'policy')}`, i.message);
  }
  return parsed.data;
}

/** The policy and state of one node, for people. */
export function describePolicy(n: NodeView): string {
  const l = n.status.lending;
  if (!l) return `${n.node}: no lending policy (it lends whenever it is online; cutter nodes policy ${n.node} --help to set one)\n`;
  const p = l.policy;
  const o = l.owner;
  const lines = [
    `node:       ${n.node}`,
    `lending:    ${describeLending(l)}${l.suspended?.length ? ` (${l.suspended.length} task${l.suspended.length > 1 ? 's' : ''} paused)` : ''}`,
    `policy:     ${p.enabled ? 'on' : 'off'}, mode ${p.mode}${p.acOnly ? ', AC power only' : ''}${p.idleMinutes ? `, owner idle ≥ ${p.idleMinutes} min` : ''}${p.maxOwnerCpuPercent !== undefined ? `, owner CPU ≤ ${p.maxOwnerCpuPercent}%` : ''}${p.minFreeMemory !== undefined ? `, free memory ≥ ${formatBytes(p.minFreeMemory)}` : ''}`,
    `windows:    ${p.windows?.length ? p.windows.join('; ') : 'any time'}`,
    `preempt:    after ${formatDuration(p.preemptAfterMs)} suspended; sampled every ${formatDuration(l.sampleMs)}`,
  ];
  if (o)
    lines.push(
      `owner:      ${o.onBattery === null ? 'power unknown' : o.onBattery ? 'on battery' : 'on AC'}, idle ${o.idleSec === null ? `unknown (${o.idleSource})` : `${Math.floor(o.idleSec / 60)} min (${o.idleSource})`}, CPU ${o.ownerCpuPercent === null ? '-' : `${Math.round(o.ownerCpuPercent)}%`}, free memory ${o.freeMemory === null ? '-' : formatBytes(o.freeMemory)}`,
    );
  return `${lines.join('\n')}\n`;
}

async function findNode(client: MeshClient, node: string): Promise<NodeView> {
  const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
  const n = nodes.find((v) => v.node === node);
  if (!n)
    throw new CutterError(
      'NOT_FOUND',
      `no node ${node}${nodes.length ? ` (known: ${nodes.map((v) => v.node).join(', ')})` : ': no nodes have joined'}`,
    );
  return n;
}

/** Adds `policy` to the `nodes` command. */
export function registerNodesPolicy(nodes: Command): void {
  withClientOptions(
    nodes
      .command('policy')
      .argument('<node>', 'node id')
      .description("show or change a node's lending policy (when it lends: AC power, owner idle, owner CPU, free memory, time windows)")
      .option('--on', 'lending on')
      .option('--off', 'lending off: the node takes no work, running tasks are suspended, then preempted')
      .option('--mode <mode>', 'auto (the conditions decide) or always (lend regardless of them)')
      .option('--ac-only <yes|no>', 'lend only on mains power')
      .option('--idle-minutes <n|off>', 'lend only after the owner has been idle N minutes')
      .option('--max-owner-cpu <pct|off>', "lend only while the owner's CPU use stays at most PCT %")
      .option('--min-free-memory <size|off>', 'lend only while this much memory is available, e.g. 2g')
      .option(
        '--window <spec>',
        'lend only inside these windows, e.g. "mon-fri 22:00-07:00" (repeatable; replaces the list)',
        (v: string, p: string[] = []) => [...p, v],
      )
      .option('--no-windows', 'lend at any time of day')
      .option('--preempt-after <duration>', 'stop a task suspended this long and place it elsewhere, e.g. 10m')
      .option('--reset', "back to the agent's own policy (its flags and file) before applying the other changes"),
  ).action((node: string, flags: PolicyFlags & { windows?: boolean }) =>
    withClient(flags, async (client) => {
      // commander's --no-windows sets `windows: false`
      const patch = patchFromFlags({ ...flags, noWindows: flags.windows === false });
      const n = await findNode(client, node);
      if (Object.keys(patch).length === 0 && !flags.reset) {
        if (flags.json) printJson({ node, lending: n.status.lending ?? null });
        else process.stdout.write(describePolicy(n));
        return 0;
      }
      const set: LendingSet = { v: 1, id: randomBytes(8).toString('hex'), patch, ...(flags.reset ? { reset: true } : {}) };
      await client.mqtt.publishAsync(client.topics.nodeLendingSet(node), encode(set), { qos: 1 });
      const deadline = Date.now() + APPLY_WAIT_MS;
      let now = n;
      while (now.status.lending?.applied !== set.id && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        now = await findNode(client, node);
      }
      const applied = now.status.lending?.applied === set.id;
      if (flags.json) printJson({ node, applied, lending: now.status.lending ?? null });
      else if (applied) process.stdout.write(describePolicy(now));
      else
        process.stdout.write(
          `${node} has not confirmed the change within ${APPLY_WAIT_MS / 1000} s (${now.state}): its agent applies it when it reads it (it is kept for it while it is offline); see cutter nodes policy ${node}\n`,
        );
      return applied ? 0 : 1;
    }),
  );
}
