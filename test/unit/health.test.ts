import { describe, expect, it } from 'vitest';
import { nodeHealth } from '../../cli/health.js';
import { quoteArg, splitExecStart } from '../../cli/systemd-unit.js';
import type { NodeView } from '../../shared/schemas/index.js';

const GIB = 1024 ** 3;
function view(patch: Partial<NodeView> = {}, cap: Partial<NonNullable<NodeView['status']['capacity']>> = {}): NodeView {
  return {
    node: 'n',
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 100,
    reservedMemory: 0,
    status: {
      v: 1,
      node: 'n',
      state: 'online',
      version: '1.0.0',
      seq: 1,
      ts: 0,
      heartbeatMs: 1000,
      running: [],
      capacity: {
        cpu: { cores: 4, loadPercent: 10 },
        memory: { total: 16 * GIB, available: 8 * GIB },
        gpus: [],
        docker: { available: true, containersRunning: 2 },
        ...cap,
      },
    },
    ...patch,
  };
}

describe('node health (cutter nodes status)', () => {
  it('is ok for a live node with Docker, room and the same version', () => {
    expect(nodeHealth(view(), '1.0.0')).toEqual({ level: 'ok', problems: [] });
  });
  it('fails an offline node, with its reason first', () => {
    const h = nodeHealth(view({ state: 'offline', offlineReason: 'connection lost' }), '1.0.0');
    expect(h.level).toBe('fail');
    expect(h.problems[0]).toBe('offline (connection lost)');
  });
  it('fails a node that never announced its capacity', () => {
    const v = view();
    delete v.status.capacity;
    expect(nodeHealth(v, '1.0.0').level).toBe('fail');
  });
  it('warns for drained, Docker down, Ollama down, low memory and another version — but not for Docker disabled on purpose', () => {
    expect(nodeHealth(view({ drained: true, state: 'draining' }), '1.0.0')).toEqual({ level: 'warn', problems: ['drained'] });
    expect(nodeHealth(view({}, { docker: { available: false, error: 'Docker engine not reachable: ENOENT' } }), '1.0.0').problems).toEqual([
      'docker: Docker engine not reachable: ENOENT',
    ]);
    expect(nodeHealth(view({}, { docker: { available: false, error: 'docker executor disabled' } }), '1.0.0').level).toBe('ok');
    expect(
      nodeHealth(view({}, { ollama: { available: false, error: 'connect ECONNREFUSED', models: [], loaded: [] } }), '1.0.0').problems,
    ).toEqual(['ollama: connect ECONNREFUSED']);
    expect(nodeHealth(view({}, { memory: { total: 16 * GIB, available: GIB / 2 } }), '1.0.0').problems).toEqual([
      'under 5% memory available',
    ]);
    expect(nodeHealth(view(), '1.1.0').problems).toEqual(['agent 1.0.0, cli 1.1.0']);
  });
});

describe('systemd ExecStart quoting', () => {
  it('round-trips arguments with spaces, quotes, backslashes, % and $', () => {
    const args = ['/usr/bin/node', 'plain', 'with space', 'q"uote', 'back\\slash', '50%', '$HOME', '', 'k=v,a=b'];
    expect(splitExecStart(args.map(quoteArg).join(' '))).toEqual(args);
    expect(quoteArg('plain')).toBe('plain');
    expect(quoteArg('50%')).toBe('50%%');
  });
});
