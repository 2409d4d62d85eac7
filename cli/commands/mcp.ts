/**
 * `cutter mcp`: a Model Context Protocol server (cli/mcp/server.ts) for AI assistants, on stdio
 * (desktop assistants spawn it) or, with `--http HOST:PORT`, on the Streamable HTTP transport at
 * `POST /mcp` (cli/mcp/http.ts: every request carries an mcp token, checked by the broker).
 * Meant to run with a scoped token: `cutter token create --role mcp --name desk --json > mcp.json`,
 * then `cutter mcp --token-file mcp.json` in the assistant's MCP config. On stdio, stdout carries
 * the protocol only; errors go to stderr.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { AuditLog } from '../../shared/audit.js';
import { defaultDataDir } from '../../shared/config.js';
import { errorMessage } from '../../shared/errors.js';
import { MeshClient } from '../../shared/client/index.js';
import { McpHttpServer, parseListen } from '../mcp/http.js';
import { createMcpServer } from '../mcp/server.js';
import { printJson } from '../output.js';
import { cliConfig, withClientOptions, type GlobalFlags } from './common.js';

type McpFlags = GlobalFlags & { allowExec?: boolean; auditLog?: string; http?: string; filesDir?: string; insecure?: boolean };

/** Serves on HTTP until SIGINT/SIGTERM; prints where (with --json: `{"url"}`). */
async function serveHttp(flags: McpFlags, audit: AuditLog): Promise<void> {
  const cfg = cliConfig(flags);
  const { host, port } = parseListen(flags.http!);
  const http = new McpHttpServer({
    host,
    port,
    cfg: { ...cfg, timeoutMs: Math.max(cfg.timeoutMs, 15_000) },
    audit,
    allowExec: Boolean(flags.allowExec),
    ...(flags.filesDir ? { filesDir: flags.filesDir } : {}),
    insecure: Boolean(flags.insecure),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  await http.start();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${http.port}/mcp`;
  if (flags.json) printJson({ url, broker: cfg.broker });
  else process.stderr.write(`cutter mcp: serving Streamable HTTP on ${url} (broker ${cfg.broker}); send an mcp token as Bearer\n`);
  const stop = () => {
    void http
      .stop()
      .then(() => audit.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export function registerMcp(program: Command): void {
  withClientOptions(
    program
      .command('mcp')
      .description(
        'serve the Model Context Protocol on stdio (or --http): tools to list nodes, run, follow and cancel tasks, ask a model, copy files, pull models, run pipelines, drain nodes',
      ),
  )
    .option('--allow-exec', 'let run_task and run_pipeline start exec tasks (shell jobs) too')
    .option('--audit-log <path>', 'where every tool call is recorded (default <data dir>/mcp-audit.jsonl)')
    .option('--http <host:port>', 'serve the Streamable HTTP transport at POST /mcp instead of stdio (each request needs an mcp token)')
    .option('--files-dir <dir>', 'the one local directory copy_file and run_pipeline may use by path (default: inline content only)')
    .option('--insecure', 'with --http on a broker without tokens: serve without a token')
    .action(async (flags: McpFlags) => {
      try {
        const audit = new AuditLog(flags.auditLog ?? join(defaultDataDir(), 'mcp-audit.jsonl'));
        if (flags.http) return await serveHttp(flags, audit);
        const cfg = cliConfig(flags);
        // The broker may be slow to answer a fresh assistant: give requests room.
        const client = await MeshClient.connect({ ...cfg, timeoutMs: Math.max(cfg.timeoutMs, 15_000) });
        const server = createMcpServer({
          client,
          who: cfg.username ?? client.clientId,
          audit,
          allowExec: Boolean(flags.allowExec),
          ...(flags.filesDir ? { filesDir: flags.filesDir } : {}),
        });
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
