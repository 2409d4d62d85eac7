/**
 * The exit code `cutter run` gives for a task's terminal state (cli/exit.ts), like `docker run`'s:
 * 125 cutter could not run it, 126/127 its command cannot be invoked / was not found, 137 killed,
 * 128+signal when the CLI cancelled it for a signal and it reported no code, else its own code.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_BROKEN_PIPE, signalExitCode, taskExitCode } from '../../cli/exit.js';
import { TaskOptionsSchema, type TaskState } from '../../shared/schemas/index.js';

function ended(patch: Partial<TaskState>): TaskState {
  return {
    v: 1,
    taskId: 't1',
    state: 'failed',
    kind: 'exec',
    summary: 'x',
    node: 'n1',
    attempt: 1,
    requirements: { memory: 0, cpus: 0 },
    options: TaskOptionsSchema.parse({}),
    placement: null,
    reason: null,
    createdAt: 1,
    updatedAt: 2,
    assignedAt: 1,
    startedAt: null,
    finishedAt: 2,
    exitCode: null,
    oomKilled: false,
    error: null,
    submittedBy: 'cli',
    ...patch,
  };
}
const error = (code: string) => ({ code, message: code });

describe('taskExitCode', () => {
  it('0 for success, the task’s own code for a run that failed', () => {
    expect(taskExitCode(ended({ state: 'succeeded', exitCode: 0 }))).toBe(0);
    expect(taskExitCode(ended({ exitCode: 3, error: error('EXIT_CODE') }))).toBe(3);
  });

  it('127 for a command not found, 126 for one that cannot be invoked (with or without the exit code)', () => {
    expect(taskExitCode(ended({ exitCode: 127, error: error('COMMAND_NOT_FOUND') }))).toBe(127);
    expect(taskExitCode(ended({ error: error('COMMAND_NOT_FOUND') }))).toBe(127);
    expect(taskExitCode(ended({ error: error('COMMAND_NOT_INVOKABLE') }))).toBe(126);
  });

  it('137 for a kill: the task’s code when it reported one, else 137 for an OOM kill', () => {
    expect(taskExitCode(ended({ exitCode: 137, error: error('EXIT_CODE') }))).toBe(137);
    expect(taskExitCode(ended({ exitCode: 1, oomKilled: true, error: error('OOM_KILLED') }))).toBe(1);
    expect(taskExitCode(ended({ oomKilled: true, error: error('OOM_KILLED') }))).toBe(137);
  });

  it('125 for what cutter could not run: start failures, lost tasks (whatever code they had)', () => {
    expect(taskExitCode(ended({ error: error('START_FAILED') }))).toBe(125);
    expect(taskExitCode(ended({ error: error('IMAGE_PULL_FAILED') }))).toBe(125);
    expect(taskExitCode(ended({ state: 'lost', exitCode: 143, error: error('NODE_LOST') }))).toBe(125);
  });

  it('a cancelled task: its own code when it reported one, else 128 + the signal that cancelled it (130 without one)', () => {
    expect(taskExitCode(ended({ state: 'cancelled', exitCode: 143 }), 'SIGTERM')).toBe(143);
    expect(taskExitCode(ended({ state: 'cancelled' }), 'SIGTERM')).toBe(143);
    expect(taskExitCode(ended({ state: 'cancelled' }), 'SIGHUP')).toBe(129);
    expect(taskExitCode(ended({ state: 'cancelled' }))).toBe(130);
    expect(signalExitCode('SIGINT')).toBe(130);
    expect(EXIT_BROKEN_PIPE).toBe(128 + 13);
  });
});
