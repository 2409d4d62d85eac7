/**
 * `cutter token create|list|revoke`: the MQTT identities of the mesh. A token is a username
 * (`ROLE:NAME`) and a password that any MQTT client can use (mosquitto_sub -u … -P …, Home
 * Assistant, Node-RED). The password is shown once.
 */
import type { Command } from 'commander';
import { CutterError } from '../../shared/errors.js';
import { TokenCreatedSchema, TokenListResultSchema } from '../../shared/schemas/index.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('MQTT identities: agent, admin and observer tokens');
  withClientOptions(token.command('create').description('create a token and print its username and password (shown once)'))
    .requiredOption(
      '--role <role>',
      'agent (one node) | admin (the CLI) | observer (read-only: Home Assistant, dashboards) | mcp (cutter mcp: run, follow and cancel tasks, list nodes)',
    )
    .option('--node <node>', 'the node an agent token is for')
    .option('--name <name>', 'a name for an admin or observer token')
    .action((flags: GlobalFlags & { role: string; node?: string; name?: string }) =>
      withClient(flags, async (client) => {
        if (!['agent', 'admin', 'observer', 'mcp'].includes(flags.role))
          throw new CutterError('INVALID_ARGUMENT', `--role ${flags.role}: use agent, admin, observer or mcp`);
        const name = flags.role === 'agent' ? flags.node : flags.name;
        if (!name)
          throw new CutterError(
            'INVALID_ARGUMENT',
            flags.role === 'agent' ? 'an agent token needs --node NODE' : `an ${flags.role} token needs --name NAME`,
          );
        const created = await client.request({ op: 'token.create', role: flags.role as 'agent', name }, TokenCreatedSchema);
        if (flags.json) printJson(created);
        else
          process.stdout.write(
            `username: ${created.username}\npassword: ${created.password}\n(the password is shown once; save it, e.g. with --json > token.json for cutter agent --token-file)\n`,
          );
        return 0;
      }),
    );
  withClientOptions(token.command('list').alias('ls').description('list tokens (never their secrets)')).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { tokens } = await client.request({ op: 'token.list' }, TokenListResultSchema);
      if (flags.json) printJson(tokens);
      else
        process.stdout.write(
          `${table(
            ['USERNAME', 'ROLE', 'CREATED', 'REVOKED'],
            tokens.map((t) => [t.username, t.role, ago(Date.now() - t.createdAt), t.revokedAt ? ago(Date.now() - t.revokedAt) : '-']),
          )}\n`,
        );
      return 0;
    }),
  );
  withClientOptions(
    token
      .command('revoke')
      .argument('<username>', 'e.g. agent:notebook')
      .description('revoke a token: refused from its next connection on'),
  ).action((username: string, flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { tokens } = await client.request({ op: 'token.revoke', username }, TokenListResultSchema);
      if (flags.json) printJson(tokens[0]);
      else process.stdout.write(`${username} revoked\n`);
      return 0;
    }),
  );
}
