#!/usr/bin/env node
/** The `cutter` command. */
import { Command } from 'commander';
import { VERSION } from '../shared/version.js';
import { registerAgentInstall } from './commands/agent-install.js';
import { registerCp } from './commands/cp.js';
import { registerDaemons } from './commands/daemons.js';
import { registerImage } from './commands/image.js';
import { registerMcp } from './commands/mcp.js';
import { registerPipeline } from './commands/pipeline.js';
import { registerPorts } from './commands/ports.js';
import { registerLogs } from './commands/logs.js';
import { registerNodes } from './commands/nodes.js';
import { registerOllama } from './commands/ollama.js';
import { registerRun } from './commands/run.js';
import { registerTasks } from './commands/tasks.js';
import { registerToken } from './commands/token.js';

const program = new Command('cutter')
  .description('A compute mesh for home labs: run containers and jobs on the node that has room.')
  .version(VERSION)
  .enablePositionalOptions()
  .showHelpAfterError();

registerDaemons(program);
registerAgentInstall(program);
registerNodes(program);
registerRun(program);
registerTasks(program);
registerLogs(program);
registerToken(program);
registerOllama(program);
registerCp(program);
registerImage(program);
registerPorts(program);
registerPipeline(program);
registerMcp(program);

await program.parseAsync(process.argv);
