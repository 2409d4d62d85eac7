/**
 * The CLI as a user runs it (issue 19, "One CLI"): one duration syntax with the flag named in every
 * error, config errors naming the real flag, no stack trace for bad ids or bad options, with or
 * without a server, and `cutter logs` saying why a task never ran.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type CliResult, type Daemon, eventually, startAgent, startServer, tempDir } from '../harness.js';

/** A line of a JavaScript stack (`    at fn (file.js:1:2)`): never for users. */
const STACK = /^\s+at .+(:\d+:\d+\)?|native\))$/m;

/** The refusal a user sees: exit 1, one `error: …` line naming what to fix, no stack. */
function refused(r: CliResult, text: string | RegExp): void {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).not.toMatch(STACK);
  if (typeof text === 'string') expect(r.stderr).toContain(text);
  else expect(r.stderr).toMatch(text);
}

describe('without a server', () => {
  it('says the broker cannot be reached, with the duration read as written', async () => {
    const r = await cli(['tasks', 'list', '--broker', 'mqtt://127.0.0.1:1', '--connect-timeout', '300ms']);
    refused(r, /cannot reach the broker at mqtt:\/\/127\.0\.0\.1:1 within 300 ms/);
  });

  it('daemon duration flags: the flag named, a bare number is ms, units everywhere', async () => {
    refused(
      await cli(['agent', '--heartbeat', 'often']),
      'error: --heartbeat "often": "often" is not a duration: use a number with a unit ms, s, m, h or d',
    );
    refused(await cli(['server', '--lease', '1x']), 'error: --lease "1x": "1x" is not a duration');
    refused(
      await cli(['agent', '--keepalive', '30']),
      '--keepalive "30": MQTT keepalive is whole seconds, write e.g. 10s (a bare number is milliseconds)',
    );
    refused(await cli(['agent', '--drain-timeout', 'soon']), /--drain-timeout.*"soon" is not a duration/);
  });

  it('a config error names the flag as typed (--keepalive, --heartbeat, not --keepalive-sec / --heartbeat-ms)', async () => {
    const r = await cli(['agent', '--keepalive', '0s']);
    refused(r, 'keepaliveSec = 0 (from flag --keepalive)');
    expect(r.stderr).not.toContain('--keepalive-sec');
    const h = await cli(['agent', '--heartbeat', '50ms']);
    refused(h, 'heartbeatMs = 50 (from flag --heartbeat)');
    expect(h.stderr).not.toContain('--heartbeat-ms');
  });

  it('a pipeline file is checked strictly before any connection, naming the path and the nearest key', async () => {
    const dir = tempDir();
    const typo = join(dir, 'typo.yaml');
    writeFileSync(
      typo,
      "steps:\n  - id: a\n    task: { kind: exec, command: ['true'] }\n  - id: b\n    task: { kind: docker, image: busybox, comand: [echo, hi] }\n",
    );
    const r = await cli(['pipeline', typo, '--broker', 'mqtt://127.0.0.1:1']);
    refused(r, `error: pipeline ${typo}: steps[1].task.comand: unknown key "comand" (did you mean "command"?)`);
    expect(r.stderr).not.toContain('cannot reach the broker');

    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'steps:\n  - id: a\n    timeout: 1h30m\n    task: { kind: exec, command: [echo, hi] }\n');
    const ok = await cli(['pipeline', good, '--check', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).steps[0]).toMatchObject({ timeout: 5_400_000, task: { kind: 'exec', argv: ['echo', 'hi'] } });

    const old = join(dir, 'old.yaml');
    writeFileSync(old, "steps:\n  - id: a\n    task: { kind: exec, argv: ['true'] }\n");
    const dep = await cli(['pipeline', old, '--check']);
    expect(dep.code).toBe(0);
    expect(dep.stderr).toContain('steps[0].task.argv: "argv" is the old name of "command"; it still works, but write "command"');
  });

  it('cutter sync names the command to use when the node is missing', async () => {
    refused(
      await cli(['sync', 'busybox:latest']),
      'error: cutter sync is cutter image push: name the node, e.g. cutter image push busybox:latest --node NODE',
    );
  });
});

describe('with a server', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, 'msg-node', ['--allow-exec']);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('cancel, tasks and token: bad and unknown ids and options are one line each, no stack', async () => {
    const cases: [string[], string][] = [
      [['cancel', 'nope'], 'error: no task nope'],
      [['cancel', '../../etc'], 'taskId: must be 1-64 characters'],
      [['cancel', 'nope', '--grace', '2x'], 'error: --grace "2x": "2x" is not a duration'],
      [['tasks', 'show', 'a b'], 'taskId: must be 1-64 characters'],
      [['tasks', 'list', '--state', 'bogus'], 'error: --state "bogus": use queued, assigned, running'],
      [['tasks', 'list', '--connect-timeout', '5'], 'error: --connect-timeout "5": must be at least 100ms'],
      [['token', 'create', '--role', 'bad'], 'error: --role bad: use agent, admin, observer or mcp'],
      [['token', 'create', '--role', 'agent'], 'error: an agent token needs --node NODE'],
      [['token', 'create', '--role', 'agent', '--node', 'bad node'], 'name: must be 1-64 characters'],
      [['token', 'revoke', 'nobody'], 'error: no live token for nobody'],
      [['cp', 'a', 'b'], 'exactly one of source and destination must be NODE:PATH'],
      [['cp', './x', 'msg-node:/tmp/x', '--stall', '1'], 'error: --stall "1": must be at least 100ms'],
      [['run', '--timeout', 'x', 'exec', '--', 'true'], 'error: --timeout x: "x" is not a duration'],
      [['cp', 'nope:/x', './y'], 'error: no node nope (known: msg-node); cutter nodes list shows them'],
      [['sync', 'busybox:latest', 'nope'], 'error: no node nope (known: msg-node)'],
    ];
    for (const [args, text] of cases) {
      const r = await cli(args, { broker: url });
      refused(r, text);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    const j = await cli(['tasks', 'list', '--state', 'bogus', '--json'], { broker: url });
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--state "bogus"') });
  });

  it('cancel --grace takes a duration', async () => {
    const run = await cli(['run', '-d', 'exec', '--', 'sleep', '30'], { broker: url });
    const id = run.stdout.trim();
    const r = await cli(['cancel', id, '--grace', '1s'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${id} cancelled`);
  });

  it('cutter logs of a task that failed to start says why', async () => {
    const run = await cli(['run', '-d', 'exec', '--', '/nonexistent-command-19'], { broker: url });
    const id = run.stdout.trim();
    await eventually(async () => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout).state === 'failed');
    const r = await cli(['logs', id], { broker: url });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      new RegExp(`^cutter: task ${id} failed before it started on msg-node: .*nonexistent-command-19.*\\(COMMAND_NOT_FOUND\\)`),
    );
  });

  it('cutter offload is cutter run --auto-select', async () => {
    const r = await cli(['offload', 'exec', '--', 'echo', 'offloaded'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('offloaded\n');
    expect(r.stderr).toContain('placed on msg-node');
    refused(
      await cli(['offload', '--node', 'msg-node', 'exec', '--', 'true'], { broker: url }),
      '--node and --auto-select exclude each other',
    );
  });

  it('a queued task is reported once when stderr is not a terminal', async () => {
    const r = await cli(['run', '--memory', '64t', '--timeout', '3s', 'exec', '--', 'true'], { broker: url });
    expect(r.code).not.toBe(0);
    expect(r.stderr.match(/queued: /g)).toHaveLength(1);
    expect(r.stderr).not.toContain('\r');
    expect(r.stderr).not.toContain('\x1b[');
  });
});
