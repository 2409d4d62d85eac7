/**
 * What an agent's process evaluates at start: the modules `cutter agent` imports statically, from
 * the CLI's entry through the agent command to agent/agent.ts (cli/main.ts and the commands load
 * each other with dynamic imports, each followed here as its own entry). Read from esbuild's
 * metafile of tsc's output, the same graph the bundle is made of.
 *
 * Why it matters: zod builds every schema of a module when the module is evaluated. Through the
 * schemas' index an agent built the server's and the CLI's too (requests, pipelines, Home
 * Assistant discovery): ~340 more schema objects, 0.6 MiB of its idle heap (bench/profile.md).
 */
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness.js';

/** Files reachable from `entries` through static `import` statements only. */
async function staticClosure(entries: string[]): Promise<string[]> {
  const r = await build({
    entryPoints: entries.map((e) => join(ROOT, e)),
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    outdir: join(ROOT, '.agent-modules-test'),
    platform: 'node',
    format: 'esm',
    packages: 'external',
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = r.metafile.inputs;
  const seen = new Set<string>();
  const todo = [...entries];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file) || !inputs[file]) continue;
    seen.add(file);
    for (const i of inputs[file].imports) if (i.kind === 'import-statement' && !i.external) todo.push(i.path);
  }
  return [...seen];
}

describe("an agent's modules", () => {
  it("build the wire schemas an agent decodes and none of the server's or the CLI's", async () => {
    const files = await staticClosure([
      'dist/cli/main.js',
      'dist/cli/commands/daemons.js',
      'dist/cli/commands/agent-install.js',
      'dist/agent/agent.js',
    ]);
    const schemas = files
      .filter((f) => f.startsWith('dist/shared/schemas/'))
      .map((f) => f.slice('dist/shared/schemas/'.length))
      .sort();
    // What an agent decodes or publishes: assignments and cancels, acks, stdin and credit frames,
    // files and volumes, lending and wake commands, and its own status.
    expect(schemas).toEqual(expect.arrayContaining(['assignment.js', 'node.js', 'task.js', 'stdin.js', 'wake.js']));
    expect(schemas.filter((f) => ['index.js', 'request.js', 'pipeline.js', 'ha.js', 'kept-output.js', 'rejection.js'].includes(f))).toEqual(
      [],
    );
  });
});
