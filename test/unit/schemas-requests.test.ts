/**
 * The request/reply schemas: what a client may ask the controller and what it answers.
 */
import { describe, expect, it } from 'vitest';
import { ReplySchema, RequestSchema } from '../../shared/schemas/index.js';
import { DELETE, patch, accepts, rejects, execSpec, DEFAULT_OPTIONS, requests } from './schemas-fixtures.js';

describe('RequestSchema', () => {
  it.each(Object.keys(requests))('accepts op %s', (op) => {
    expect(RequestSchema.parse(requests[op]).op).toBe(op);
  });

  it('defaults task.list limit to 100 and submit requirements to memory 0, cpus 0', () => {
    const list = RequestSchema.parse({ v: 1, id: 'r', op: 'task.list' });
    expect(list.op === 'task.list' && list.limit).toBe(100);
    const submit = RequestSchema.parse({ v: 1, id: 'r', op: 'submit', spec: execSpec, requirements: {} });
    expect(submit.op === 'submit' && submit.requirements).toEqual({ memory: 0, cpus: 0 });
  });

  it('defaults submit options when absent or partial, with a fresh object per request', () => {
    const a = RequestSchema.parse(requests.submit);
    const b = RequestSchema.parse(requests.submit);
    expect(a.op === 'submit' && a.options).toEqual(DEFAULT_OPTIONS);
    expect(a.op === 'submit' && b.op === 'submit' && a.options !== b.options).toBe(true);
    const partial = RequestSchema.parse({ ...requests.submit, options: { queue: false, priority: 3 } });
    expect(partial.op === 'submit' && partial.options).toEqual({ ...DEFAULT_OPTIONS, queue: false, priority: 3 });
  });

  it('accepts node.drain with drain false (resume)', () => {
    const parsed = RequestSchema.parse({ ...requests['node.drain'], drain: false });
    expect(parsed.op === 'node.drain' && parsed.drain).toBe(false);
  });

  it.each([
    ['unknown op', { v: 1, id: 'r', op: 'delete' }],
    ['missing op', { v: 1, id: 'r' }],
    ['v: 2', { ...requests['node.list'], v: 2 }],
    ['empty id', { ...requests['node.list'], id: '' }],
    ['id over 64 chars', { ...requests['node.list'], id: 'r'.repeat(65) }],
    ['id as number', { ...requests['node.list'], id: 5 }],
    ['submit without spec', patch(requests.submit, 'spec', DELETE)],
    ['submit without requirements', patch(requests.submit, 'requirements', DELETE)],
    ['submit with task id containing /', { ...requests.submit, taskId: 'a/b' }],
    ['submit with an exec spec without argv', { ...requests.submit, spec: { kind: 'exec' } }],
    ['cancel without taskId', patch(requests.cancel, 'taskId', DELETE)],
    ['cancel with graceMs over 10 minutes', { ...requests.cancel, graceMs: 600_001 }],
    ['task.get with task id containing +', { ...requests['task.get'], taskId: 'a+' }],
    ['task.list with limit 0', { ...requests['task.list'], limit: 0 }],
    ['task.list with limit over 10000', { ...requests['task.list'], limit: 10_001 }],
    ['task.list with an unknown state', { ...requests['task.list'], states: ['bogus'] }],
    ['submit with an unknown restart policy', { ...requests.submit, options: { restart: 'sometimes' } }],
    ['submit with maxAttempts 0', { ...requests.submit, options: { maxAttempts: 0 } }],
    ['submit with options null', { ...requests.submit, options: null }],
    ['node.drain without drain', patch(requests['node.drain'], 'drain', DELETE)],
    ['node.drain with drain as string', { ...requests['node.drain'], drain: 'true' }],
    ['node.drain without node', patch(requests['node.drain'], 'node', DELETE)],
    ['node.drain with node id containing /', { ...requests['node.drain'], node: 'a/b' }],
    ['task.logs without taskId', patch(requests['task.logs'], 'taskId', DELETE)],
    ['task.logs with task id containing #', { ...requests['task.logs'], taskId: 'a#' }],
  ])('rejects %s', (_name, value) => {
    rejects(RequestSchema, value);
  });
});

describe('ReplySchema', () => {
  it('accepts an ok reply with any result', () => {
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: true, result: { nodes: [] } });
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: true, result: null });
  });

  it('accepts an error reply, with and without rejections', () => {
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: false, error: { code: 'NOT_FOUND', message: 'no task x' } });
    const parsed = ReplySchema.parse({
      v: 1,
      id: 'req-1',
      ok: false,
      error: { code: 'NO_FIT', message: 'no node can take it', rejections: [{ node: 'gpu-box', code: 'draining' }] },
    });
    expect(parsed.ok === false && parsed.error.rejections?.[0].node).toBe('gpu-box');
  });

  it.each([
    ['ok as string', { v: 1, id: 'r', ok: 'yes', result: 1 }],
    ['missing ok', { v: 1, id: 'r', result: 1 }],
    ['v: 2', { v: 2, id: 'r', ok: true, result: 1 }],
    ['error reply without error', { v: 1, id: 'r', ok: false }],
    ['error without code', { v: 1, id: 'r', ok: false, error: { message: 'x' } }],
    ['error without message', { v: 1, id: 'r', ok: false, error: { code: 'X' } }],
    [
      'rejection node with /',
      { v: 1, id: 'r', ok: false, error: { code: 'X', message: 'm', rejections: [{ node: 'a/b', code: 'offline' }] } },
    ],
    ['id over 64 chars', { v: 1, id: 'r'.repeat(65), ok: true, result: 1 }],
  ])('rejects %s', (_name, value) => {
    rejects(ReplySchema, value);
  });
});
