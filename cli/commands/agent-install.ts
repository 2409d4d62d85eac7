/**
 * `cutter agent install`: writes a systemd unit that runs this cutter's agent with a broker URL
 * and a token file (the password stays in the file, never in the unit, which is world-readable in
 * /etc/systemd/system). Prints the commands that enable it; runs nothing itself.
 */
import { type Command, Option } from 'commander';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AgentConfigSchema, defaultNodeId, DurationSchema, loadConfig, SizeSchema } from '../../shared/config.js';
import { CutterError } from '../../shared/errors.js';
import { ID_RE } from '../../shared/topics.js';
import { printError, printJson } from '../output.js';
import { renderUnit } from '../systemd-unit.js';
import { agentConfigInput } from './agent.js';

interface InstallFlags {
  user?: boolean;
  system?: boolean;
  unitDir?: string;
  name: string;
  broker?: string;
  tokenFile?: string;
  nodeId?: string;
  maxMemory?: string;
  maxTasks?: string;
  allowExec?: boolean;
  labels?: string;
  lostAfter?: string;
  drainTimeout?: string;
  caFile?: string;
  runAs?: string;
  json?: boolean;
  /** The agent's own flags given to install (every other `cutter agent` flag), in unit order. */
  passThrough?: string[];
  /** All flag values, for the agent's own config check. */
  all?: Record<string, unknown>;
}

const bad = (message: string) => new CutterError('INVALID_CONFIG', message);

/** Builds the unit from the flags. @throws CutterError INVALID_CONFIG naming the bad flag. */
function plan(flags: InstallFlags) {
  if (flags.user && flags.system) throw bad('choose one of --user and --system');
  const scope = flags.system ? 'system' : 'user';
  if (!flags.broker) throw bad('--broker URL is required (the broker the agent dials, e.g. mqtt://server:1883)');
  try {
    new URL(flags.broker);
  } catch {
    throw bad(`--broker "${flags.broker}" is not a URL (e.g. mqtt://server:1883)`);
  }
  if (!flags.tokenFile) throw bad('--token-file is required: cutter token create --role agent --node ID --json > node.json on the server');
  const tokenFile = resolve(flags.tokenFile);
  let creds: { username?: unknown; password?: unknown };
  try {
    creds = JSON.parse(readFileSync(tokenFile, 'utf8')) as typeof creds;
  } catch (err) {
    throw bad(`--token-file ${tokenFile}: ${(err as Error).message}`);
  }
  if (typeof creds?.username !== 'string' || typeof creds.password !== 'string')
    throw bad(`--token-file ${tokenFile}: expected {"username", "password"}`);
  const nodeId = flags.nodeId ?? (String(creds.username).startsWith('agent:') ? String(creds.username).slice(6) : defaultNodeId());
  if (!ID_RE.test(nodeId)) throw bad(`--node-id "${nodeId}": node ids are 1-64 characters of A-Z a-z 0-9 _ . -`);
  if (flags.maxMemory !== undefined && !SizeSchema.safeParse(flags.maxMemory).success)
    throw bad(`--max-memory "${flags.maxMemory}" is not a size (e.g. 12g)`);
  if (flags.maxTasks !== undefined && !/^[1-9]\d*$/.test(flags.maxTasks))
    throw bad(`--max-tasks "${flags.maxTasks}" is not a positive whole number`);
  for (const [flag, v] of [
    ['--lost-after', flags.lostAfter],
    ['--drain-timeout', flags.drainTimeout],
  ] as const) {
    if (v !== undefined && !DurationSchema.safeParse(v).success) throw bad(`${flag} "${v}" is not a duration (e.g. 10m)`);
  }
  if (flags.runAs && scope !== 'system') throw bad('--run-as is for --system units (a user unit runs as its user)');
  // Every agent flag is checked as the agent will check it (no env, no config file: the unit has neither).
  if (flags.all) loadConfig(AgentConfigSchema, 'agent', agentConfigInput({ ...flags.all, tokenFile: undefined, config: undefined }), {});
  const drainMs = flags.drainTimeout !== undefined ? (DurationSchema.parse(flags.drainTimeout) as number) : 300_000;

  // The CLI that runs this command (dist/cli/main.js, through any npm bin symlink): the unit runs the same cutter.
  const main = realpathSync(process.argv[1]);
  const args = [main, 'agent', '--broker', flags.broker, '--node-id', nodeId, '--token-file', tokenFile];
  if (flags.maxMemory !== undefined) args.push('--max-memory', flags.maxMemory);
  if (flags.maxTasks !== undefined) args.push('--max-tasks', flags.maxTasks);
  if (flags.allowExec) args.push('--allow-exec');
  if (flags.labels !== undefined) args.push('--labels', flags.labels);
  if (flags.lostAfter !== undefined) args.push('--lost-after', flags.lostAfter);
  if (flags.drainTimeout !== undefined) args.push('--drain-timeout', flags.drainTimeout);
  if (flags.caFile !== undefined) args.push('--ca-file', resolve(flags.caFile));
  args.push(...(flags.passThrough ?? []));

  const dir = flags.unitDir
    ? resolve(flags.unitDir)
    : scope === 'system'
      ? '/etc/systemd/system'
      : join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'systemd', 'user');
  if (!/^[A-Za-z0-9_.@-]+$/.test(flags.name)) throw bad(`--name "${flags.name}": a unit name is letters, digits and _ . @ -`);
  const path = join(dir, `${flags.name}.service`);
  const unit = renderUnit({
    scope,
    nodeId,
    execPath: process.execPath,
    args,
    stopTimeoutSec: Math.ceil(drainMs / 1000) + 30,
    runAs: flags.runAs,
  });
  const ctl = scope === 'user' ? 'systemctl --user' : 'sudo systemctl';
  const commands = [
    `${ctl} daemon-reload`,
    `${ctl} enable --now ${flags.name}`,
    ...(scope === 'user' ? [`loginctl enable-linger ${process.env.USER ?? '$USER'}   # start at boot without a login`] : []),
  ];
  const mode = statSync(tokenFile).mode & 0o077;
  return { scope, path, unit, commands, tokenFile, nodeId, tokenReadableByOthers: mode !== 0 };
}

/** Option values that name files or directories: made absolute, as a unit does not run in this directory. */
const PATH_VALUE = /<(path|file|dir|dirs)>/;

/**
 * Copies onto `install` every option of `agent` it does not define itself, so `cutter agent install`
 * accepts every agent flag (new ones included) and passes each one given on to the unit.
 * @returns a function giving the copied flags that were given, as unit arguments.
 */
function copyAgentOptions(agent: Command, install: Command): () => string[] {
  const copied: Option[] = [];
  for (const o of agent.options as readonly Option[]) {
    if (!o.long || install.options.some((i) => i.long === o.long)) continue;
    const copy = new Option(o.flags, o.description);
    if (o.parseArg) copy.argParser(o.parseArg as (value: string, previous: unknown) => unknown);
    if (Array.isArray(o.defaultValue)) copy.default([]);
    install.addOption(copy);
    copied.push(copy);
  }
  return () => {
    const out: string[] = [];
    for (const o of copied) {
      const key = o.attributeName();
      if (install.getOptionValueSource(key) !== 'cli') continue;
      const value = install.opts()[key] as unknown;
      const abs = (v: string) =>
        PATH_VALUE.test(o.flags)
          ? v
              .split(',')
              .map((p) => resolve(p))
              .join(',')
          : v;
      if (value === true) out.push(o.long!);
      else if (Array.isArray(value)) for (const v of value) out.push(o.long!, abs(String(v)));
      else if (value !== undefined && value !== false) out.push(o.long!, abs(String(value)));
    }
    return out;
  };
}

/** Adds `install` to the `agent` command. */
export function registerAgentInstall(program: Command): void {
  const agent = program.commands.find((c) => c.name() === 'agent');
  if (!agent) throw new Error('the agent command must be registered first');
  agent.enablePositionalOptions();
  const install = agent
    .command('install')
    .description('write a systemd unit that runs this agent at boot (user unit by default)')
    .option('--user', 'a user unit in ~/.config/systemd/user (default)')
    .option('--system', 'a system unit in /etc/systemd/system (needs root)')
    .option('--unit-dir <dir>', 'write the unit here instead')
    .option('--name <name>', 'unit name', 'cutter-agent')
    .option('--broker <url>', 'broker URL the agent dials (required)')
    .option('--token-file <path>', "the node's token JSON (required; kept in the file, not the unit)")
    .option('--node-id <id>', 'node id (default: from the token, else the hostname)')
    .option('--max-memory <size>', 'memory cutter may commit here, e.g. 12g')
    .option('--max-tasks <n>', 'concurrent tasks')
    .option('--allow-exec', 'run exec tasks (shell jobs)')
    .option('--labels <k=v,…>', 'labels for placement')
    .option('--lost-after <duration>', 'how long the node may be away before its tasks are rescheduled (a notebook: 10m)')
    .option('--drain-timeout <duration>', 'on stop, how long running tasks may finish (default 5m)')
    .option('--ca-file <path>', 'PEM CA for mqtts://')
    .option('--run-as <user>', 'system units: run as this user (must reach the Docker socket)')
    .option('--json', 'print JSON for scripts');
  const given = copyAgentOptions(agent, install);
  install.action((flags: InstallFlags) => {
    try {
      const p = plan({ ...flags, passThrough: given(), all: flags as unknown as Record<string, unknown> });
      mkdirSync(resolve(p.path, '..'), { recursive: true });
      const replaced = existsSync(p.path);
      writeFileSync(p.path, p.unit, { mode: 0o644 });
      if (flags.json) printJson({ path: p.path, scope: p.scope, nodeId: p.nodeId, replaced, commands: p.commands, unit: p.unit });
      else {
        process.stdout.write(`${replaced ? 'replaced' : 'wrote'} ${p.path}\nthen run:\n${p.commands.map((c) => `  ${c}`).join('\n')}\n`);
        if (p.tokenReadableByOthers) process.stderr.write(`warning: ${p.tokenFile} is readable by other users: chmod 600 it\n`);
      }
      process.exitCode = 0;
    } catch (err) {
      printError(err, Boolean(flags.json));
      process.exitCode = 1;
    }
  });
}
