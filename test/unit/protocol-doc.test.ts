import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderProtocolDoc, topicBuilderNames } from '../../scripts/protocol-doc.js';
import { RequestSchema, RestartPolicySchema, TaskStatusSchema } from '../../shared/schemas/index.js';
import { topics, type Topics } from '../../shared/topics.js';

const docPath = new URL('../../docs/protocol.md', import.meta.url);

/** The "## Topics" section: the topic table and the subscription filters. */
function topicSection(doc: string): string {
  const start = doc.indexOf('\n## Topics\n');
  expect(start, 'docs/protocol.md has no "## Topics" section').toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

describe('docs/protocol.md', () => {
  it('is exactly what renderProtocolDoc() builds from the code', () => {
    const onDisk = readFileSync(docPath, 'utf8');
    expect(onDisk, 'docs/protocol.md is out of date: run npm run docs:protocol').toBe(renderProtocolDoc());
  });

  it('lists every topic builder of topics() in its topic table', () => {
    const t = topics();
    const names = Object.keys(t).filter((k) => typeof t[k as keyof Topics] === 'function' && k !== 'idFrom' && k !== 'parse');
    expect(names.length).toBeGreaterThan(0);
    expect(topicBuilderNames()).toEqual([...names].sort());
    // Placeholders such as {node} or {task} stand for one id segment.
    const section = topicSection(renderProtocolDoc()).replace(/\{[a-z]+\}/g, '{id}');
    const onDisk = topicSection(readFileSync(docPath, 'utf8')).replace(/\{[a-z]+\}/g, '{id}');
    for (const name of names) {
      const fn = t[name as keyof Topics] as (...args: string[]) => string;
      const topic = fn(...Array.from({ length: fn.length }, () => '{id}'));
      for (const s of [section, onDisk]) {
        expect(s, `topic table lacks builder ${name}()`).toContain(`\`${name}(`);
        expect(s, `topic table lacks ${topic} (${name})`).toContain(`\`${topic}\``);
      }
    }
  });

  it('documents every request op, task state and restart policy, and the flows of a failing mesh', () => {
    const doc = renderProtocolDoc();
    for (const op of RequestSchema.options.map((o) => o.shape.op.value)) expect(doc, `op ${op}`).toContain(`Example (${op}):`);
    for (const state of TaskStatusSchema.options) expect(doc, `task state ${state}`).toContain(`- \`${state}\`: `);
    for (const policy of RestartPolicySchema.options) expect(doc, `restart policy ${policy}`).toContain(`| \`${policy}\` |`);
    for (const section of ['TaskOptions', 'RestartPolicy', 'TaskLogsResult', 'NodeView']) expect(doc).toContain(`\n### ${section}\n`);
    for (const flow of [
      'Submit and queueing',
      'Leases',
      'Node failure',
      'Fencing',
      'Cancel',
      'Draining',
      'Task logs',
      'Controller restart',
    ])
      expect(doc).toContain(`\n### ${flow}\n`);
  });
});
