/**
 * `cutter volume rm NODE:VOLUME [--force]`: deletes a volume, but not one a task still needs. The
 * controller's unfinished tasks are asked first (TaskState `volumes`): a task queued for any node
 * (or for this one), or assigned or running on this node, that mounts the volume makes the remove
 * a refusal naming the tasks; the node's agent refuses too while a task running there mounts it
 * (agent/volumes/requests.ts). `--force` removes it anyway (a running task then loses its files).
 */
import type { Command } from 'commander';
import type { MeshClient } from '../../shared/client/index.js';
import { CutterError } from '../../shared/errors.js';
import { TaskListResultSchema, type TaskState } from '../../shared/schemas/index.js';
import { FileLink } from '../../shared/transfer/link.js';
import { newXfer } from '../../shared/transfer/transfer.js';
import { printJson } from '../output.js';
import { type GlobalFlags, withClient, withClientOptions } from './common.js';
import { parseVolumeRef } from './volume.js';

/** The unfinished tasks that mount `volume` and are (or may be) placed on `node`. */
export async function volumeUsers(client: MeshClient, node: string, volume: string): Promise<TaskState[]> {
  const { tasks } = await client.request(
    { op: 'task.list', states: ['queued', 'assigned', 'running', 'unknown'], limit: 10_000 },
    TaskListResultSchema,
  );
  return tasks.filter(
    (t) =>
      t.volumes?.includes(volume) &&
      (t.node === node || (t.state === 'queued' && (t.requirements.node === undefined || t.requirements.node === node))),
  );
}

/** Registers `volume rm` on the `volume` command. */
export function registerVolumeRm(volume: Command): void {
  withClientOptions(
    volume
      .command('rm')
      .argument('<node:volume>', 'NODE:VOLUME')
      .option('--force', 'remove it even while a queued or running task mounts it')
      .description('delete a volume and everything in it (refused while a queued or running task mounts it)'),
  ).action((ref: string, flags: GlobalFlags & { force?: boolean }) =>
    withClient(flags, async (client) => {
      const { node, name } = parseVolumeRef(ref);
      if (!flags.force) {
        const users = await volumeUsers(client, node, name);
        if (users.length)
          throw new CutterError(
            'POLICY_DENIED',
            `volume ${ref} is mounted by ${users.map((t) => `task ${t.taskId} (${t.state})`).join(', ')}: ` +
              'wait for them to end or cancel them (cutter cancel TASK), or remove it anyway with cutter volume rm --force',
          );
      }
      const link = new FileLink(client.mqtt, client.topics, node, client.clientId);
      await link.open();
      try {
        const body = { type: 'vol.rm' as const, xfer: newXfer(), volume: name, ...(flags.force ? { force: true } : {}) };
        await link.ask(body, (m) => m.type === 'vol.info', 10_000, 30_000);
      } finally {
        await link.close();
      }
      if (flags.json) printJson({ node, volume: name, removed: true });
      else process.stdout.write(`removed ${ref}\n`);
      return 0;
    }),
  );
}
