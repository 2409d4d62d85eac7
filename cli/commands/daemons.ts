/** `cutter server` and `cutter agent`: the two long-running processes (cli/commands/server.ts, cli/commands/agent.ts). */
import type { Command } from 'commander';
import { registerAgent } from './agent.js';
import { registerServer } from './server.js';

export function registerDaemons(program: Command): void {
  registerServer(program);
  registerAgent(program);
}
