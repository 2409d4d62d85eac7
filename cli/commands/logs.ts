/** `cutter logs [-f] TASK`: a task's output as the controller kept it, and live with -f. */
import type { Command } from 'commander';
import { TaskStateSchema, isTerminal } from '../../shared/schemas/index.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { TaskFollower } from './follow.js';

export function registerLogs(program: Command): void {
  withClientOptions(
    program.command('logs').argument('<task>', 'task id').description("print a task's output (kept on the server, bounded per task)"),
  )
    .option('-f, --follow', 'keep printing until the task ends')
    .action((taskId: string, flags: GlobalFlags & { follow?: boolean }) =>
      withClient(flags, async (client) => {
        const state = await client.request({ op: 'task.get', taskId }, TaskStateSchema);
        const follower = new TaskFollower(client, taskId, { json: Boolean(flags.json), history: true, narrate: false });
        await follower.start();
        if (flags.follow && !isTerminal(state.state)) await follower.done;
        return 0;
      }),
    );
}
