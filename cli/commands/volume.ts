/**
 * `cutter volume create|ls|rm|inspect NODE:NAME`: the node's volumes (agent/volumes/store.ts),
 * asked straight of its agent over the file transfer topics (shared/schemas/volumes.ts), so the
 * identities allowed are those `cutter cp` allows (admins). `ls` without a node asks every online
 * node that announces volumes. Fill a volume with `cutter cp -r DIR NODE:NAME/`, mount it with
 * `cutter run -v NAME:/data docker run …`.
 */
import type { Command } from 'commander';
import { CutterError } from '../../shared/errors.js';
import { NodeListResultSchema } from '../../shared/schemas/index.js';
import type { FileOut } from '../../shared/schemas/files.js';
import type { VolumeInfo } from '../../shared/schemas/volumes.js';
import { ID_RE } from '../../shared/topics.js';
import { formatBytes } from '../../shared/units.js';
import { volumeNameProblem } from '../../shared/volumes.js';
import { FileLink } from '../../shared/transfer/link.js';
import { newXfer } from '../../shared/transfer/transfer.js';
import { printJson, table } from '../output.js';
import type { MeshClient as CliClient } from '../../shared/client/index.js';
import { type GlobalFlags, withClient, withClientOptions } from './common.js';
import { registerVolumeRm } from './volume-rm.js';

/** `NODE:NAME` → its parts. @throws CutterError INVALID_ARGUMENT saying what is wrong. */
export function parseVolumeRef(arg: string): { node: string; name: string } {
  const colon = arg.indexOf(':');
  if (colon <= 0) throw new CutterError('INVALID_ARGUMENT', `"${arg}": give NODE:VOLUME (e.g. gpu-box:data)`);
  const node = arg.slice(0, colon);
  const name = arg.slice(colon + 1);
  if (!ID_RE.test(node)) throw new CutterError('INVALID_ARGUMENT', `"${node}" in "${arg}" is not a node id`);
  const problem = volumeNameProblem(name);
  if (problem) throw new CutterError('INVALID_ARGUMENT', problem);
  return { node, name };
}

/** Sends one volume request to `node` and waits for its reply of `type` (10 s between resends, 30 s in all). */
async function ask<T extends FileOut['type']>(
  client: CliClient,
  node: string,
  body: Parameters<FileLink['send']>[0],
  type: T,
  timeoutMs = 30_000,
): Promise<Extract<FileOut, { type: T }>> {
  const link = new FileLink(client.mqtt, client.topics, node, client.clientId);
  await link.open();
  try {
    return await link.ask(body, (m): m is Extract<FileOut, { type: T }> => m.type === type, 10_000, timeoutMs);
  } finally {
    await link.close();
  }
}

const rows = (node: string, vs: VolumeInfo[]) => vs.map((v) => [node, v.name, String(v.files), formatBytes(v.bytes), v.path]);

export function registerVolume(program: Command): void {
  const volume = program
    .command('volume')
    .description("a node's volumes: directories cutter manages there, filled with cp -r and mounted with run -v");
  const one = (
    name: string,
    what: string,
    type: 'vol.create' | 'vol.inspect' | 'vol.rm',
    done: (v: VolumeInfo | null, ref: string) => string,
  ) =>
    withClientOptions(volume.command(name).argument('<node:volume>', 'NODE:VOLUME').description(what)).action(
      (ref: string, flags: GlobalFlags) =>
        withClient(flags, async (client) => {
          const { node, name: vol } = parseVolumeRef(ref);
          const r = await ask(client, node, { type, xfer: newXfer(), volume: vol }, 'vol.info');
          if (flags.json) printJson(type === 'vol.rm' ? { node, volume: vol, removed: true } : { node, ...r.volume });
          else process.stdout.write(`${done(r.volume, ref)}\n`);
          return 0;
        }),
    );
  one('create', 'create a volume on a node (an existing one is kept)', 'vol.create', (v, ref) => `created ${ref} at ${v?.path}`);
  one('inspect', "a volume's path on the node, files and bytes", 'vol.inspect', (v, ref) =>
    v ? `${ref}: ${v.files} files, ${formatBytes(v.bytes)}, at ${v.path}` : ref,
  );
  registerVolumeRm(volume);
  withClientOptions(
    volume
      .command('ls')
      .argument('[node]', 'only this node (default: every online node that announces volumes)')
      .description('list volumes: node, name, files, bytes, path on the node'),
  ).action((only: string | undefined, flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      let nodes: string[];
      if (only) {
        if (!ID_RE.test(only)) throw new CutterError('INVALID_ARGUMENT', `"${only}" is not a node id`);
        nodes = [only];
      } else {
        const { nodes: list } = await client.request({ op: 'node.list' }, NodeListResultSchema);
        nodes = list.filter((n) => n.state !== 'offline' && n.status.volumes !== undefined).map((n) => n.node);
      }
      const out: { node: string; volumes: VolumeInfo[]; error?: string }[] = await Promise.all(
        nodes.map((node) =>
          ask(client, node, { type: 'vol.ls', xfer: newXfer() }, 'vol.list', only ? 30_000 : 10_000).then(
            (r) => ({ node, volumes: r.volumes }),
            (err: Error) => ({ node, volumes: [], error: err.message }),
          ),
        ),
      );
      if (only && out[0].error) throw new CutterError('TIMEOUT', out[0].error);
      if (flags.json) printJson({ nodes: out });
      else {
        const all = out.flatMap((n) => rows(n.node, n.volumes));
        process.stdout.write(
          all.length ? `${table(['NODE', 'VOLUME', 'FILES', 'SIZE', 'PATH'], all)}\n` : 'no volumes: cutter volume create NODE:NAME\n',
        );
        for (const n of out) if (n.error) process.stderr.write(`cutter: ${n.node}: ${n.error}\n`);
      }
      return 0;
    }),
  );
}
