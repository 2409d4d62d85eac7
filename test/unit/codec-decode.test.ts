/**
 * decode(): a payload (Buffer or string) checked against a schema, never throwing, with size
 * limits and no prototype pollution.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decode, encode, MAX_PAYLOAD_BYTES } from '../../shared/codec.js';
import { AssignmentSchema, ControllerStatusSchema, NodeStatusSchema } from '../../shared/schemas/index.js';
import { patch, nodeStatus, lastWill, assignment } from './schemas-fixtures.js';

describe('decode()', () => {
  afterEach(() => {
    // in case a test failed half-way and did pollute
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('decodes a valid payload from a Buffer and from a string', () => {
    const fromBuffer = decode(NodeStatusSchema, Buffer.from(encode(lastWill)));
    expect(fromBuffer).toEqual({ ok: true, value: { ...lastWill, running: [] } });
    const fromString = decode(ControllerStatusSchema, encode({ v: 1, state: 'online', version: '1', ts: 1 }));
    expect(fromString.ok).toBe(true);
  });

  it('reports non-JSON without throwing', () => {
    for (const payload of ['{not json', '', Buffer.from([0xff, 0xfe, 0x00])]) {
      const r = decode(NodeStatusSchema, payload);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(/^not JSON: /);
    }
  });

  it(`refuses a payload over MAX_PAYLOAD_BYTES (${MAX_PAYLOAD_BYTES}) before parsing it`, () => {
    const big = JSON.stringify({ data: 'x'.repeat(MAX_PAYLOAD_BYTES) });
    const r = decode(z.object({ data: z.string() }), Buffer.from(big));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toBe(`payload of ${Buffer.byteLength(big)} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  });

  it('accepts a payload of exactly MAX_PAYLOAD_BYTES', () => {
    const exact = `"${'x'.repeat(MAX_PAYLOAD_BYTES - 2)}"`;
    expect(Buffer.byteLength(exact)).toBe(MAX_PAYLOAD_BYTES);
    expect(decode(z.string(), exact).ok).toBe(true);
  });

  it('measures a string payload in UTF-8 bytes, not characters', () => {
    // 3 bytes per character: fewer characters than the limit, more bytes
    const text = `"${'€'.repeat(Math.ceil(MAX_PAYLOAD_BYTES / 3))}"`;
    expect(text.length).toBeLessThan(MAX_PAYLOAD_BYTES);
    const r = decode(z.string(), text);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain('exceeds');
  });

  it('names the path of the bad field', () => {
    const r = decode(NodeStatusSchema, encode(patch(nodeStatus, 'capacity.memory.total', 'lots')));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^capacity\.memory\.total: /);
    const r2 = decode(NodeStatusSchema, encode(patch(nodeStatus, 'running.0.memory', -5)));
    expect(!r2.ok && r2.error).toMatch(/^running\.0\.memory: /);
    const r3 = decode(NodeStatusSchema, encode({ ...lastWill, node: 'a/b' }));
    expect(!r3.ok && r3.error).toMatch(/^node: must be 1-64 characters/);
  });

  it('says (root) when the payload itself has the wrong type', () => {
    const r = decode(NodeStatusSchema, '42');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^\(root\): /);
  });

  it('does not let __proto__ keys pollute Object.prototype', () => {
    const payload =
      '{"__proto__":{"polluted":"top"},"v":1,"node":"n1","state":"online","version":"1","seq":1,"ts":1,"heartbeatMs":1000,' +
      '"offer":{"maxMemory":null,"maxTasks":1,"executors":["docker"],"labels":{"__proto__":{"polluted":"labels"},"a":"b"}}}';
    const r = decode(NodeStatusSchema, payload);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    if (!r.ok) throw new Error(`expected the payload to decode: ${r.error}`);
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    expect((r.value as Record<string, unknown>).polluted).toBeUndefined();
    const labels = r.value.offer!.labels;
    expect(Object.getPrototypeOf(labels)).toBe(Object.prototype);
    expect((labels as Record<string, unknown>).polluted).toBeUndefined();
    expect(labels.a).toBe('b');
  });

  it('does not let a __proto__ env name pollute Object.prototype either', () => {
    const r = decode(
      AssignmentSchema,
      JSON.stringify(assignment).replace('"OLLAMA_HOST"', '"__proto__"').replace('"0.0.0.0"', '{"polluted":"env"}'),
    );
    // whatever the verdict, nothing leaks into every object
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    if (r.ok && r.value.spec.kind === 'docker') expect(Object.getPrototypeOf(r.value.spec.env)).toBe(Object.prototype);
  });
});
