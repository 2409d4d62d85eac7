/**
 * The judging half of the flood test (flood.test.ts): from what the test observed (the task list,
 * the state topics, the agents' result events and every process's log lines) it counts each kind of
 * violation the test forbids and the figures it reports. Pure: no processes, no broker.
 */
import type { Daemon, LogLine } from '../harness.js';

/** The terminal task states. */
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'lost']);

/** A task as `task.list` and the retained state topic give it (the fields the flood test reads). */
export type TaskState = {
  taskId: string;
  state: string;
  node: string | null;
  attempt: number;
  exitCode: number | null;
  error: { code: string; message: string } | null;
  options: { maxAttempts: number };
};

/** A result event an agent published. */
export type Result = {
  taskId: string;
  attempt: number;
  node: string;
  seq: number;
  exitCode: number;
  cancelled?: boolean;
  finishedAt: number;
};

/** What the state topic of one task showed over the run. */
export type Watched = { last: TaskState | null; firstTerminal: TaskState | null; afterTerminal: string[]; cleared: boolean };

/** One agent process (all incarnations of all nodes), with when it was killed. */
export type Incarnation = { node: string; daemon: Daemon; killedAt: number | null };

/** Everything the flood test observed, as the judge needs it. */
export interface FloodObservations {
  accepted: Set<string>;
  /** task.list by task id. */
  byId: Map<string, TaskState>;
  watched: Map<string, Watched>;
  /** The retained state per task, as a newcomer reads it after the flood. */
  retained: Map<string, TaskState>;
  /** `cutter tasks list --json`: state per task id. */
  cliStates: Map<string, string>;
  serverLines: LogLine[];
  incarnations: Incarnation[];
  results: Result[];
}

/** Violations by kind (each with one line per case) and the figures the test prints. */
export interface FloodTally {
  problems: Record<string, string[]>;
  states: Record<string, number>;
  multiAttempt: number;
  staleSuccesses: number;
  staleCauses: Record<string, number>;
  unreported: number;
}

/** Counts the violations and figures of a flood run (see flood.test.ts for the rules). */
export function tallyFlood(o: FloodObservations): FloodTally {
  const { accepted, byId, watched, retained, cliStates, incarnations, results } = o;
  const server = { lines: o.serverLines };
  // ---- agent side: every successful finish of every attempt, across all incarnations: from the
  // agents' 'task finished' log lines and from the result events they published (a SIGKILL can
  // swallow the last buffered log lines of an agent, never an event the broker acknowledged).
  const key = (taskId: unknown, attempt: unknown) => `${String(taskId)}:${String(attempt)}`;
  const logRuns = new Map<string, string[]>();
  incarnations.forEach((inc, n) => {
    for (const l of inc.daemon.lines as LogLine[]) {
      // Exit code 0 is a job that did its work, even if a stop (cancelled: true) came as it ended.
      if ((l.msg === 'task finished' || l.msg === 'stale attempt ended') && l.exitCode === 0) {
        const k = key(l.taskId, l.attempt);
        logRuns.set(k, [...(logRuns.get(k) ?? []), `${inc.node}#${n}`]);
      }
    }
  });
  const eventRuns = new Map<string, Set<string>>();
  for (const r of results) {
    if (r.exitCode !== 0) continue;
    const k = key(r.taskId, r.attempt);
    eventRuns.set(k, (eventRuns.get(k) ?? new Set()).add(`${r.node}:${r.seq}:${r.finishedAt}`));
  }
  const runs = (k: string) => Math.max(logRuns.get(k)?.length ?? 0, eventRuns.get(k)?.size ?? 0);
  const runNodes = (k: string) =>
    new Set([...(logRuns.get(k) ?? []).map((x) => x.split('#')[0]), ...[...(eventRuns.get(k) ?? [])].map((x) => x.split(':')[0])]);

  // ---- controller side, from its log: placements, reschedulings, ignored stale results, finishes
  const byTask = new Map<string, LogLine[]>();
  for (const l of server.lines) if (typeof l.taskId === 'string') byTask.set(l.taskId, [...(byTask.get(l.taskId) ?? []), l]);
  const ignoredResults = new Set(
    server.lines.filter((l) => l.msg === 'ignored event from a stale attempt' && l.type === 'result').map((l) => key(l.taskId, l.attempt)),
  );
  const lastFinish = new Map<string, number>();
  for (const r of results) lastFinish.set(key(r.taskId, r.attempt), Math.max(lastFinish.get(key(r.taskId, r.attempt)) ?? 0, r.finishedAt));

  // ---- count
  const problems: Record<string, string[]> = {};
  const problem = (kind: string, text: string) => (problems[kind] ??= []).push(text);
  const states: Record<string, number> = {};
  let multiAttempt = 0;
  let staleSuccesses = 0;
  const staleCauses: Record<string, number> = {};
  let unreported = 0;
  for (const id of accepted) {
    const t = byId.get(id);
    const w = watched.get(id);
    if (!t) {
      problem('missing', `${id}: missing from the task list`);
      continue;
    }
    states[t.state] = (states[t.state] ?? 0) + 1;
    if (!TERMINAL.has(t.state)) problem('not terminal', `${id}: ${t.state}, attempt ${t.attempt}`);
    if (cliStates.get(id) !== t.state) problem('CLI disagrees', `${id}: cutter tasks list says ${cliStates.get(id)}, task.list ${t.state}`);
    const kept = retained.get(id);
    if (!kept) problem('state topic', `${id}: no retained state`);
    else if (kept.state !== t.state || kept.attempt !== t.attempt || kept.node !== t.node)
      problem(
        'state topic',
        `${id}: retained state says ${kept.state}@${kept.attempt}/${kept.node}, list ${t.state}@${t.attempt}/${t.node}`,
      );
    if (!w?.last || w.cleared) problem('state topic', `${id}: state stream ended empty (cleared: ${w?.cleared})`);
    else if (w.last.state !== t.state || w.last.attempt !== t.attempt || w.last.node !== t.node)
      problem(
        'state topic',
        `${id}: state topic says ${w.last.state}@${w.last.attempt}/${w.last.node}, list ${t.state}@${t.attempt}/${t.node}`,
      );
    if (w?.afterTerminal.length)
      problem('left a terminal state', `${id}: state topic changed after ${w.firstTerminal!.state}: ${w.afterTerminal.join(', ')}`);
    const log = byTask.get(id) ?? [];
    const finishes = log.filter((l) => l.msg === 'task finished').length;
    if (finishes !== 1) problem('finished twice', `${id}: controller logged 'task finished' ${finishes} times`);
    if (t.state === 'failed' || t.state === 'cancelled') problem('failed', `${id}: ${t.state}: ${t.error?.code} ${t.error?.message}`);
    if (t.state === 'lost' && t.attempt < t.options.maxAttempts)
      problem('lost early', `${id}: lost at attempt ${t.attempt} of ${t.options.maxAttempts}: ${t.error?.message}`);
    if (t.attempt > 1) multiAttempt++;

    // Each attempt N > 1 must be placed after attempt N - 1 ended (a 'rescheduling' line), never next to it.
    const ended = new Set<number>();
    for (const l of log) {
      if (l.msg === 'rescheduling') ended.add(l.attempt as number);
      if (l.msg === 'task placed' && (l.attempt as number) > 1 && !ended.has((l.attempt as number) - 1)) {
        problem(
          'double placement',
          `${id}: attempt ${l.attempt} placed on ${l.node} while attempt ${(l.attempt as number) - 1} had not ended`,
        );
      }
      // An attempt declared gone from its node although it finished there later: the controller misread the node's heartbeats.
      if (l.msg === 'rescheduling' && /no longer runs attempt/.test(String(l.why))) {
        const finishedAt = lastFinish.get(key(id, l.attempt));
        if (finishedAt !== undefined && finishedAt > (l.time as number))
          problem(
            'false loss',
            `${id}: attempt ${l.attempt} declared lost (“${l.why}”) ${finishedAt - (l.time as number)} ms before it finished on its node`,
          );
      }
    }

    for (let attempt = 1; attempt <= t.attempt; attempt++) {
      const k = key(id, attempt);
      const n = runs(k);
      if (n > 1) problem('same attempt twice', `${id}: attempt ${attempt} ran to success ${n} times (${[...runNodes(k)].join(', ')})`);
      if (t.state === 'succeeded' && attempt === t.attempt) {
        // The success that counts: exactly one, on the node the controller recorded.
        if (n === 0)
          problem('uncounted success', `${id}: succeeded at attempt ${attempt} on ${t.node}, but no agent reported that attempt's success`);
        else if (!runNodes(k).has(t.node!))
          problem('uncounted success', `${id}: final attempt succeeded on ${[...runNodes(k)].join(', ')}, controller says ${t.node}`);
      } else if (n > 0) {
        // A stale attempt that ran to success anyway: the controller must have ignored its result.
        staleSuccesses++;
        const end = log.find((l) => l.msg === 'rescheduling' && l.attempt === attempt);
        const cause = end
          ? String(end.why)
              .replace(/node \S+/g, 'node N')
              .replace(/attempt \d+/g, 'attempt A')
              .replace(/\(.*?\)/g, '(…)')
          : 'superseded without ending (double placement)';
        staleCauses[cause] = (staleCauses[cause] ?? 0) + 1;
        // (Known only from an agent's log, the result may never have left the agent: it logs before reporting.)
        if (eventRuns.has(k) && !ignoredResults.has(k))
          problem(
            'stale result not ignored',
            `${id}: attempt ${attempt} (kept: ${t.state}@${t.attempt}) reported success; the controller never logged ignoring that result`,
          );
        if (!eventRuns.has(k)) unreported++;
      }
    }
  }
  return { problems, states, multiAttempt, staleSuccesses, staleCauses, unreported };
}
