/** `cutter logs [-f] TASK`: a task's output as the controller kept it, and live with -f. */
import type { Command } from 'commander';
import { followTask } from '../../shared/client/index.js';
import { isTerminal, TaskStateSchema } from '../../shared/schemas/index.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { eventPrinter, printTask, unfinished } from './follow.js';

export function registerLogs(program: Command): void {
  withClientOptions(
    program.command('logs').argument('<task>', 'task id').description("print a task's output (kept on the server, bounded per task)"),
  )
    .option('-f, --follow', 'keep printing until the task ends')
    .action((taskId: string, flags: GlobalFlags & { follow?: boolean }) =>
      withClient(flags, async (client) => {
        const state = await client.request({ op: 'task.get', taskId }, TaskStateSchema);
        if (!flags.follow || isTerminal(state.state)) {
          const print = eventPrinter(Boolean(flags.json));
          for (const e of await client.keptEvents(taskId)) print(e);
          return 0;
        }
        const run = await followTask(client, taskId, { history: true });
        const why = unfinished(await printTask(run, { json: Boolean(flags.json), narrate: false }));
        if (why) process.stderr.write(`cutter: ${why}\n`);
        return why ? 1 : 0;
      }),
    );
}
