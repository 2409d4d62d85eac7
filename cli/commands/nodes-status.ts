/**
 * `cutter nodes status`: one health table of every node — memory, CPU, Docker containers running,
 * Ollama models, agent version, last heartbeat — exiting 2 when any node is unhealthy (or none has
 * joined), 1 when the mesh cannot be asked, 0 otherwise. Health rules: cli/health.ts.
 */
import type { Command } from 'commander';
import { NodeListResultSchema, type NodeView } from '../../shared/schemas/index.js';
import { formatBytes } from '../../shared/units.js';
import { VERSION } from '../../shared/version.js';
import { nodeHealth, type NodeHealth } from '../health.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/** Exit code when a node is unhealthy (1 stays "the command failed"). */
export const UNHEALTHY_EXIT_CODE = 2;

function row(n: NodeView, h: NodeHealth): string[] {
  const cap = n.status.capacity;
  const docker = !cap
    ? '-'
    : cap.docker.available
      ? cap.docker.containersRunning !== undefined
        ? `${cap.docker.containersRunning} running`
        : 'up'
      : 'no engine';
  const ollama = !cap?.ollama ? '-' : cap.ollama.available ? `${cap.ollama.loaded.length} loaded / ${cap.ollama.models.length}` : 'down';
  return [
    n.node,
    h.level === 'ok' ? 'ok' : h.level === 'warn' ? 'WARN' : 'FAIL',
    n.state,
    cap ? `${formatBytes(cap.memory.available)} / ${formatBytes(cap.memory.total)}` : '-',
    cap ? `${cap.cpu.loadPercent.toFixed(0)}% of ${cap.cpu.cores}` : '-',
    docker,
    ollama,
    n.status.version,
    ago(n.lastSeenAgoMs),
    h.problems.join('; '),
  ];
}

function json(n: NodeView, h: NodeHealth) {
  const cap = n.status.capacity;
  return {
    node: n.node,
    healthy: h.level !== 'fail',
    level: h.level,
    problems: h.problems,
    state: n.state,
    memory: cap ? { available: cap.memory.available, total: cap.memory.total } : null,
    cpu: cap ? { cores: cap.cpu.cores, loadPercent: cap.cpu.loadPercent } : null,
    docker: cap ? { available: cap.docker.available, containersRunning: cap.docker.containersRunning ?? null } : null,
    ollama: cap?.ollama
      ? { available: cap.ollama.available, models: cap.ollama.models.map((m) => m.name), loaded: cap.ollama.loaded.map((m) => m.name) }
      : null,
    agentVersion: n.status.version,
    lastHeartbeatAgoMs: n.lastSeenAgoMs,
  };
}

/** Adds `status` to the `nodes` command. */
export function registerNodesStatus(nodes: Command): void {
  withClientOptions(
    nodes
      .command('status')
      .description(
        `health of every node: memory, CPU, Docker, Ollama, agent version, heartbeat; exit ${UNHEALTHY_EXIT_CODE} when any is unhealthy`,
      ),
  ).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes: list } = await client.request({ op: 'node.list' }, NodeListResultSchema);
      const judged = list.map((n) => ({ n, h: nodeHealth(n, VERSION) }));
      const healthy = list.length > 0 && judged.every(({ h }) => h.level !== 'fail');
      if (flags.json) printJson({ healthy, nodes: judged.map(({ n, h }) => json(n, h)) });
      else if (list.length === 0) process.stderr.write('no nodes have joined: start `cutter agent --broker URL` on a machine\n');
      else {
        process.stdout.write(
          `${table(
            ['NODE', 'HEALTH', 'STATE', 'MEMORY AVAIL/TOTAL', 'CPU', 'DOCKER', 'OLLAMA', 'AGENT', 'HEARTBEAT', 'PROBLEMS'],
            judged.map(({ n, h }) => row(n, h)),
          )}\n`,
        );
        const bad = judged.filter(({ h }) => h.level === 'fail').length;
        if (bad) process.stderr.write(`${bad} of ${list.length} nodes unhealthy\n`);
      }
      return healthy ? 0 : UNHEALTHY_EXIT_CODE;
    }),
  );
}
