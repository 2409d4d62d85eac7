#!/usr/bin/env node
/** The `cutter` command. */
import { Command } from 'commander';
import { VERSION } from '../shared/version.js';
import { registerAgentInstall } from './commands/agent-install.js';
import { registerDaemons } from './commands/daemons.js';
import { registerLogs } from './commands/logs.js';
import { registerNodes } from './commands/nodes.js';
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

await program.parseAsync(process.argv);
