/**
 * `cutter mcp`: a Model Context Protocol server on stdio (cli/mcp/server.ts) for desktop AI
 * assistants. Meant to run with a scoped token: `cutter token create --role mcp --name desk --json
 * > mcp.json`, then `cutter mcp --token-file mcp.json` in the assistant's MCP config. stdout
 * carries the protocol only; errors go to stderr.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { AuditLog } from '../../shared/audit.js';
import { defaultDataDir } from '../../shared/config.js';
import { errorMessage } from '../../shared/errors.js';
import { MeshClient } from '../../shared/client/index.js';
import { createMcpServer } from '../mcp/server.js';
import { cliConfig, withClientOptions, type GlobalFlags } from './common.js';

export function registerMcp(program: Command): void {
  withClientOptions(
    program
      .command('mcp')
      .description('serve the Model Context Protocol on stdio: tools to list nodes, run, follow and cancel tasks, ask a model'),
  )
    .option('--allow-exec', 'let run_task start exec tasks (shell jobs) too')
    .option('--audit-log <path>', 'where every tool call is recorded (default <data dir>/mcp-audit.jsonl)')
    .action(async (flags: GlobalFlags & { allowExec?: boolean; auditLog?: string }) => {
      try {
        const cfg = cliConfig(flags);
        // The broker may be slow to answer a fresh assistant: give requests room.
        const client = await MeshClient.connect({ ...cfg, timeoutMs: Math.max(cfg.timeoutMs, 15_000) });
        const audit = new AuditLog(flags.auditLog ?? join(defaultDataDir(), 'mcp-audit.jsonl'));
        const server = createMcpServer({ client, who: cfg.username ?? client.clientId, audit, allowExec: Boolean(flags.allowExec) });
        const transport = new StdioServerTransport();
        transport.onclose = () => {
          void audit
            .close()
            .then(() => client.close())
            .finally(() => process.exit(0));
        };
        process.stdin.on('end', () => transport.onclose?.());
        await server.connect(transport);
        process.stderr.write(`cutter mcp: serving on stdio as ${cfg.username ?? 'anonymous'} (broker ${cfg.broker})\n`);
      } catch (err) {
        process.stderr.write(`error: ${errorMessage(err)}\n`);
        process.exit(1);
      }
    });
}
