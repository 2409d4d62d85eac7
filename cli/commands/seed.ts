/**
 * The commands of the seed scripts (cutter.sh, Trapdoor) by their old names, each a real command:
 * - `cutter nodes add NAME`: creates the node's agent token and prints it with the exact `cutter
 *   agent …` command line to run on that node;
 * - `cutter sync IMAGE NODE` (or `--node NODE`): `cutter image push` (./image.ts), same options;
 * - `cutter offload …`: `cutter run --auto-select …` (rewritten in ../main.ts before parsing).
 * The seed's `models.yaml` is `cutter ollama models import` (./ollama-models.ts).
 */
import type { Command } from 'commander';
import { chmodSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, resolve } from 'node:path';
import { CutterError } from '../../shared/errors.js';
import { TokenCreatedSchema } from '../../shared/schemas/index.js';
import { IdSchema } from '../../shared/topics.js';
import { printError, printJson } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { type ImagePushFlags, pushImage } from './image.js';

/** A word for a POSIX shell: as is when it is safe, else single-quoted. */
export function shellWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/**
 * The broker URL as another machine reaches it: a loopback or wildcard host is replaced by this
 * machine's hostname (the agent runs elsewhere).
 */
export function brokerForNode(url: string, host = hostname()): string {
  try {
    const u = new URL(url);
    if (['127.0.0.1', 'localhost', '0.0.0.0', '[::1]', '[::]'].includes(u.hostname)) u.hostname = host;
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** The `cutter agent` argv for a node with its token in `tokenFile`. */
export function agentCommand(node: string, broker: string, tokenFile: string, caFile?: string): string[] {
  return [
    'cutter',
    'agent',
    '--broker',
    broker,
    '--node-id',
    node,
    '--token-file',
    tokenFile,
    ...(caFile ? ['--ca-file', basename(caFile)] : []),
  ];
}

type NodesAddFlags = GlobalFlags & { agentBroker?: string; write?: string };

/** Registers `cutter nodes add NAME` under `nodes`. */
export function registerNodesAdd(nodes: Command): void {
  withClientOptions(
    nodes
      .command('add')
      .argument('<name>', 'node id the new node will use (its --node-id)')
      .description("create a node's agent token and print the cutter agent command line to run on that node"),
  )
    .option(
      '--agent-broker <url>',
      "broker URL as the node reaches it (default: this one, a loopback host replaced by this machine's hostname)",
    )
    .option('--write <file>', 'also write the token to this file (mode 0600) to copy to the node')
    .action((name: string, flags: NodesAddFlags) => {
      if (!IdSchema.safeParse(name).success) {
        printError(
          new CutterError('INVALID_ARGUMENT', `node name "${name}": 1-64 characters of A-Z a-z 0-9 _ . - (not starting with . or -)`),
          Boolean(flags.json),
        );
        process.exit(1);
      }
      return withClient(flags, async (client, cfg) => {
        let created: { username: string; password: string };
        try {
          created = await client.request({ op: 'token.create', role: 'agent', name }, TokenCreatedSchema);
        } catch (err) {
          if (err instanceof CutterError && /exists/.test(err.message))
            throw new CutterError(
              err.code,
              `${err.message}: node ${name} was added before; to make a new token: cutter token revoke agent:${name} && cutter nodes add ${name}`,
            );
          throw err;
        }
        const token = JSON.stringify({ username: created.username, password: created.password });
        const tokenFile = flags.write ? basename(flags.write) : `${name}.token.json`;
        if (flags.write) {
          writeFileSync(flags.write, `${token}\n`, { mode: 0o600 });
          chmodSync(flags.write, 0o600);
        }
        const broker = flags.agentBroker ?? brokerForNode(cfg.broker);
        const argv = agentCommand(name, broker, tokenFile, cfg.caFile);
        const line = argv.map(shellWord).join(' ');
        if (flags.json) {
          printJson({
            node: name,
            ...created,
            broker,
            tokenFile: flags.write ? resolve(flags.write) : null,
            command: argv,
            commandLine: line,
          });
          return 0;
        }
        const out = [`node ${name}: created its agent token ${created.username} (the password is shown once)`, ''];
        if (flags.write) out.push(`Copy ${resolve(flags.write)} to ${name}, then run there:`, '');
        else
          out.push(`On ${name}, save the token and start the agent:`, '', `  umask 077; cat > ${tokenFile} <<'EOF'`, `  ${token}`, '  EOF');
        out.push(`  ${line}`, '');
        if (cfg.caFile) out.push(`(copy the CA file ${cfg.caFile} beside it: the broker's certificate is signed by it)`);
        out.push(`(as a service that starts at boot: cutter agent install ${argv.slice(2).map(shellWord).join(' ')})`);
        process.stdout.write(`${out.join('\n')}\n`);
        return 0;
      });
    });
}

/** Registers `cutter sync IMAGE [NODE]`: the seed's name of `cutter image push`. */
export function registerSync(program: Command): void {
  withClientOptions(
    program
      .command('sync')
      .argument('<image>', 'image name (as the node should know it)')
      .argument('[node]', 'the node to push to (or --node)')
      .description("copy a Docker image to a node (the seed scripts' name of cutter image push; same options)"),
  )
    .option('--node <node>', 'the node to push to')
    .option('-i, --input <tar>', 'push this docker save tarball instead of saving IMAGE from the local engine')
    .option('--force', 'push even when the node has the same image id')
    .action((image: string, node: string | undefined, flags: Omit<ImagePushFlags, 'node'> & { node?: string }) => {
      const target = flags.node ?? node;
      const refuse = (message: string) => {
        printError(new CutterError('INVALID_ARGUMENT', message), Boolean(flags.json));
        process.exit(1);
      };
      if (!target) refuse(`cutter sync is cutter image push: name the node, e.g. cutter image push ${shellWord(image)} --node NODE`);
      if (flags.node && node && flags.node !== node) refuse(`cutter sync: the node is ${node} and --node is ${flags.node}: give one`);
      return withClient(flags, (client) => pushImage(client, image, { ...flags, node: target! }));
    });
}

/**
 * `cutter offload ARGS…` as `cutter run --auto-select ARGS…` (argv from `process.argv.slice(2)`);
 * other command lines unchanged.
 */
export function rewriteOffload(args: string[]): string[] {
  const i = args.findIndex((a) => !a.startsWith('-'));
  if (i < 0 || args[i] !== 'offload') return args;
  return [...args.slice(0, i), 'run', '--auto-select', ...args.slice(i + 1)];
}
