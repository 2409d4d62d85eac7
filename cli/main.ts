#!/usr/bin/env node
/**
 * The `cutter` command. Each top-level command's module is loaded only when that command runs
 * (all of them for `--help` or an unknown command): a command pays for its own dependencies,
 * not for every other command's (the MCP SDK, prom-client …). Loading modules is most of a short
 * command's time, and `cutter run` is measured against `docker run` (bench/results.md).
 * Exit codes and the process-wide guards (EPIPE, uncaught errors): ./exit.ts.
 */
import { Command } from 'commander';
import { holdOptimisingCompiler } from '../agent/start-compiler.js';
import { usePacketNumberCache } from '../shared/mqtt-settings.js';
import { VERSION } from '../shared/version.js';
import { installProcessGuards } from './exit.js';

// An agent holds V8's optimising compiler from its first statement, before the commands' modules
// load (agent/start-compiler.ts): the loader's path functions run hot while they do.
if (process.argv.slice(2).find((a) => !a.startsWith('-')) === 'agent') holdOptimisingCompiler();

type Register = (program: Command) => void;

/** Top-level command name → the registrations it needs, in order. */
const COMMANDS: Record<string, () => Promise<Register[]>> = {
  server: async () => [(await import('./commands/daemons.js')).registerDaemons],
  agent: async () => [
    (await import('./commands/daemons.js')).registerDaemons,
    (await import('./commands/agent-install.js')).registerAgentInstall,
  ],
  nodes: async () => [(await import('./commands/nodes.js')).registerNodes],
  run: async () => [(await import('./commands/run.js')).registerRun],
  tasks: async () => [(await import('./commands/tasks.js')).registerTasks],
  cancel: async () => [(await import('./commands/tasks.js')).registerTasks],
  logs: async () => [(await import('./commands/logs.js')).registerLogs],
  token: async () => [(await import('./commands/token.js')).registerToken],
  ollama: async () => [(await import('./commands/ollama.js')).registerOllama],
  cp: async () => [(await import('./commands/cp.js')).registerCp],
  image: async () => [(await import('./commands/image.js')).registerImage],
  ports: async () => [(await import('./commands/ports.js')).registerPorts],
  pipeline: async () => [(await import('./commands/pipeline.js')).registerPipeline],
  mcp: async () => [(await import('./commands/mcp.js')).registerMcp],
  // Completion walks the whole tree, so it registers every other command first.
  completion: async () => [
    ...(
      await Promise.all(
        Object.keys(COMMANDS)
          .filter((k) => k !== 'completion')
          .map((k) => COMMANDS[k]()),
      )
    ).flat(),
    (await import('./commands/completion.js')).registerCompletion,
  ],
  volume: async () => [(await import('./commands/volume.js')).registerVolume],
  // The seed scripts' names (cutter.sh, Trapdoor): `sync` is image push; `offload` is rewritten to `run --auto-select` below.
  sync: async () => [(await import('./commands/seed.js')).registerSync],
};

const program = new Command('cutter')
  .description('A compute mesh for home labs: run containers and jobs on the node that has room.')
  .version(VERSION)
  .enablePositionalOptions()
  .showHelpAfterError();

// `cutter --version` needs no command: answer before any command module is loaded.
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
  process.exit(0);
}
// `cutter offload …` is `cutter run --auto-select …` (cli/commands/seed.ts).
if (process.argv.slice(2).find((a) => !a.startsWith('-')) === 'offload')
  process.argv.splice(2, Infinity, ...(await import('./commands/seed.js')).rewriteOffload(process.argv.slice(2)));
const name = process.argv.slice(2).find((a) => !a.startsWith('-'));
// An agent's start allocates a burst that would grow V8's young generation for its first seconds
// (agent/young-generation.ts); cli/commands/agent.ts lets it grow again once the agent has started.
// The same for V8's optimising compiler, which would optimise the start's one-off code (agent/start-compiler.ts).
if (name === 'agent') (await import('../agent/young-generation.js')).holdYoungGeneration();
// No stack traces for users (exit 125), a quiet exit 141 on a closed pipe; daemons keep the stack in their log.
installProcessGuards({ withStack: name === 'server' || name === 'agent' });
// Only the server writes enough packets for mqtt-packet's number cache to pay for itself (shared/mqtt.ts).
usePacketNumberCache(name === 'server');
// zod compiles each object schema into a function (`new Function`) the first time it parses: worth
// it for a daemon that parses the same messages for days, not for a command that parses a handful
// and exits. `cutter nodes list`: 248 -> 233 ms (bench/profile.md, "A command's connect, and what is left of its start").
if (name !== 'server' && name !== 'agent') (await import('zod')).config({ jitless: true });
const wanted = name !== undefined && name in COMMANDS ? [name] : Object.keys(COMMANDS);
const registered = new Set<Register>();
for (const key of wanted) {
  for (const register of await COMMANDS[key]()) {
    if (registered.has(register)) continue;
    registered.add(register);
    register(program);
  }
}

await program.parseAsync(process.argv);
