/** The strict pipeline file (cli/pipeline-file.ts, shared/strict-keys.ts): a typo is an error naming its path and the nearest key. */
import { describe, expect, it } from 'vitest';
import { parsePipeline } from '../../cli/pipeline-file.js';
import { editDistance, nearestKey } from '../../shared/strict-keys.js';

const doc = (steps: unknown[], extra: Record<string, unknown> = {}) => ({ steps, ...extra });
const exec = (id: string, task: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
  id,
  task: { kind: 'exec', ...task },
  ...more,
});

describe('strict pipeline schema', () => {
  it('names a misspelled step key with its path and the nearest valid key', () => {
    const raw = doc([
      exec('a', { command: ['true'] }),
      exec('b', { command: ['true'] }),
      { id: 'c', comand: ['x'], task: { kind: 'exec', command: ['true'] } },
    ]);
    expect(() => parsePipeline(raw, 'pipeline p.yaml')).toThrow(
      'pipeline p.yaml: steps[2].comand: unknown key "comand" (did you mean "task.command"?)',
    );
  });

  it('names a misspelled task key inside a docker task (the kind picks the keys)', () => {
    const raw = doc([{ id: 'a', task: { kind: 'docker', image: 'busybox', comand: ['echo', 'hi'] } }]);
    expect(() => parsePipeline(raw, 'p')).toThrow('steps[0].task.comand: unknown key "comand" (did you mean "command"?)');
  });

  it('lists the valid keys when nothing is close, and names top-level typos', () => {
    expect(() => parsePipeline(doc([exec('a', { command: ['true'] }, { zzzzzz: 1 })]), 'p')).toThrow(
      /steps\[0\]\.zzzzzz: unknown key "zzzzzz" \(valid keys here: id, needs, node, memory, cpus, timeout, task\)/,
    );
    expect(() => parsePipeline(doc([exec('a', { command: ['true'] })], { stesp: [] }), 'p')).toThrow(
      'stesp: unknown key "stesp" (did you mean "steps"?)',
    );
  });

  it('accepts free-form maps (env, labels, ollama request) with any keys', () => {
    const raw = doc([
      { id: 'a', task: { kind: 'docker', image: 'busybox', command: ['env'], env: { ANYTHING: '1' }, labels: { whatever: 'x' } } },
      { id: 'b', task: { kind: 'ollama', op: 'generate', model: 'm', request: { prompt: 'hi', options: { num_ctx: 4 } } } },
    ]);
    const { pipeline } = parsePipeline(raw, 'p');
    expect(pipeline.steps[0].task).toMatchObject({ kind: 'docker', cmd: ['env'], env: { ANYTHING: '1' } });
  });

  it('"command" is the one name for docker and exec; cmd and argv still work with a deprecation note', () => {
    const { pipeline, notes } = parsePipeline(doc([exec('a', { command: ['echo', 'x'] })]), 'p');
    expect(pipeline.steps[0].task).toMatchObject({ kind: 'exec', argv: ['echo', 'x'] });
    expect(notes).toEqual([]);
    const old = parsePipeline(doc([exec('a', { argv: ['true'] }), { id: 'b', task: { kind: 'docker', image: 'x', cmd: ['y'] } }]), 'p');
    expect(old.notes).toEqual([
      'steps[0].task.argv: "argv" is the old name of "command"; it still works, but write "command"',
      'steps[1].task.cmd: "cmd" is the old name of "command"; it still works, but write "command"',
    ]);
    expect(() => parsePipeline(doc([exec('a', { argv: ['a'], command: ['b'] })]), 'p')).toThrow(
      'give "command" or its old name "argv", not both',
    );
  });

  it('names a bad command by "command", and a bad duration by its field', () => {
    expect(() => parsePipeline(doc([exec('a', { command: 'echo hi' })]), 'p')).toThrow(/steps\[0\]\.task\.command: /);
    expect(() => parsePipeline(doc([exec('a', { command: ['true'] }, { timeout: 'soon' })]), 'p')).toThrow(
      'steps[0].timeout: "soon" is not a duration',
    );
    expect(parsePipeline(doc([exec('a', { command: ['true'] }, { timeout: '1h30m' })]), 'p').pipeline.steps[0].timeout).toBe(5_400_000);
  });
});

describe('nearest key', () => {
  it('is the smallest edit distance, and none when far', () => {
    expect(editDistance('comand', 'command')).toBe(1);
    expect(nearestKey('neds', ['id', 'needs', 'node'])).toBe('needs');
    expect(nearestKey('completely', ['id', 'needs'])).toBeUndefined();
  });
});
