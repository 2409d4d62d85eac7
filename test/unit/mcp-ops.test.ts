/** Pure parts of issue 19's MCP and dashboard additions: `--http HOST:PORT` parsing and the dashboard's Ollama groups. */
import { describe, expect, it } from 'vitest';
import { parseListen } from '../../cli/mcp/http.js';
import { ollamaGroups } from '../../controller/extensions/dashboard/ollama-groups.js';
import type { TaskRecord } from '../../controller/task-record.js';

const rec = (taskId: string, model: string, node: string | null, state: string, createdAt: number): TaskRecord =>
  ({
    spec: { kind: 'ollama', op: 'chat', model, request: {}, pull: false },
    state: { taskId, state, node, createdAt, startedAt: createdAt + 10, finishedAt: state === 'running' ? null : createdAt + 110 },
  }) as unknown as TaskRecord;

describe('cutter mcp --http', () => {
  it('parses HOST:PORT, [IPv6]:PORT and a bare port, and refuses the rest saying what it wants', () => {
    expect(parseListen('127.0.0.1:8765')).toEqual({ host: '127.0.0.1', port: 8765 });
    expect(parseListen('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseListen('8765')).toEqual({ host: '127.0.0.1', port: 8765 });
    for (const bad of ['localhost', 'x:99999', ':80', 'a:b'])
      expect(() => parseListen(bad), bad).toThrow(/expected HOST:PORT, e\.g\. 127\.0\.0\.1:8765/);
  });
});

describe('dashboard Ollama groups', () => {
  it('makes one group per model and node, counting calls, live and failed ones, with the newest call', () => {
    const docker = { spec: { kind: 'docker' }, state: { taskId: 'd', state: 'running' } } as unknown as TaskRecord;
    const groups = ollamaGroups(
      [
        rec('a', 'llama3', 'n1', 'succeeded', 1000),
        rec('b', 'llama3:latest', 'n1', 'failed', 2000),
        rec('c', 'llama3', 'n1', 'running', 3000),
        rec('e', 'llama3', 'n2', 'succeeded', 1500),
        docker,
      ],
      5000,
    );
    expect(groups).toEqual([
      {
        model: 'llama3:latest',
        node: 'n1',
        count: 3,
        live: 1,
        failed: 1,
        latest: { taskId: 'c', op: 'chat', state: 'running', updatedAt: 3000, durationMs: 1990 },
      },
      {
        model: 'llama3:latest',
        node: 'n2',
        count: 1,
        live: 0,
        failed: 0,
        latest: { taskId: 'e', op: 'chat', state: 'succeeded', updatedAt: 1500, durationMs: 100 },
      },
    ]);
  });
});
