/** `cutter ports`: the port forwards the server holds open (or refused), from their retained states. */
import type { Command } from 'commander';
import { listForwards } from '../forwards.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

export function registerPorts(program: Command): void {
  withClientOptions(
    program.command('ports').description('list port forwards (cutter run -p SERVER:CONTAINER): server port → node address'),
  ).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const forwards = await listForwards(client);
      if (flags.json) {
        printJson(forwards);
        return 0;
      }
      if (forwards.length === 0) {
        process.stdout.write('no port forwards\n');
        return 0;
      }
      const rows = forwards.flatMap((f) =>
        f.forwards.map((x) => [
          f.taskId,
          f.node,
          f.state,
          String(x.server),
          `${x.target} (container ${x.container})`,
          ago(Date.now() - f.ts),
          f.reason ?? '',
        ]),
      );
      process.stdout.write(`${table(['TASK', 'NODE', 'STATE', 'SERVER PORT', 'TARGET', 'SINCE', 'REASON'], rows)}\n`);
      return 0;
    }),
  );
}
