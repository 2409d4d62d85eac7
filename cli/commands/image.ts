/**
 * `cutter image push IMAGE --node N`: copies a Docker image to a node that cannot reach a
 * registry. The image is `docker save`d from the local engine (or read from a tarball with
 * `--input`), sent over the file transfer protocol (cli/files/: windowed chunks, SHA-256,
 * resume) as an `image.put`, and the node's agent `docker load`s it. Skipped when the node's
 * engine already has the same image id (asked with `image.inspect`), unless `--force`.
 */
import type { Command } from 'commander';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { IdSchema } from '../../shared/topics.js';
import { formatBytes, formatDuration } from '../../shared/units.js';
import { FileLink } from '../../shared/transfer/link.js';
import { putFile } from '../files/put.js';
import { imagesInTar } from '../image-tar.js';
import { requireOnlineNode } from '../node-check.js';
import { printJson } from '../output.js';
import { ProgressBar } from '../progress.js';
import type { MeshClient } from '../../shared/client/index.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('Docker images on nodes');
  withClientOptions(
    image
      .command('push')
      .argument('<image>', 'image name (as the node should know it)')
      .description('copy a Docker image to a node and docker load it there (no registry needed)'),
  )
    .requiredOption('--node <node>', 'the node to push to')
    .option('-i, --input <tar>', 'push this docker save tarball instead of saving IMAGE from the local engine')
    .option('--force', 'push even when the node has the same image id')
    .action((name: string, flags: ImagePushFlags) => withClient(flags, (client) => pushImage(client, name, flags)));
}

/** Flags of `cutter image push` (and `cutter sync`, its seed name). */
export type ImagePushFlags = GlobalFlags & { node: string; input?: string; force?: boolean };

/**
 * Pushes image `name` to `flags.node` (module comment): skipped when the node has the same id.
 * @returns the exit code (0).
 * @throws CutterError INVALID_ARGUMENT / NOT_FOUND naming the flag or the image at fault.
 */
export async function pushImage(client: MeshClient, name: string, flags: ImagePushFlags): Promise<number> {
  if (!IdSchema.safeParse(flags.node).success) throw new CutterError('INVALID_ARGUMENT', `--node ${flags.node} is not a node id`);
  await requireOnlineNode(client, flags.node, '--node');
  const link = new FileLink(client.mqtt, client.topics, flags.node, client.clientId);
  await link.open();
  const tmp = flags.input ? undefined : mkdtempSync(join(tmpdir(), 'cutter-image-'));
  const say = (line: string) => !flags.json && process.stderr.write(`${line}\n`);
  try {
    // The id the pushed image has: from the tarball's manifest, or the local engine.
    let localId: string;
    let docker: import('dockerode') | undefined;
    if (flags.input) {
      const images = await imagesInTar(flags.input).catch((err) => {
        throw new CutterError('INVALID_ARGUMENT', `--input ${flags.input}: ${errorMessage(err)}`);
      });
      const match = images.find((i) => i.repoTags.includes(name) || i.repoTags.includes(`${name}:latest`));
      if (!match)
        throw new CutterError(
          'INVALID_ARGUMENT',
          `--input ${flags.input} does not hold ${name} (it holds ${images.flatMap((i) => i.repoTags).join(', ') || 'untagged images'})`,
        );
      localId = match.id;
    } else {
      const Docker = (await import('dockerode')).default;
      docker = new Docker();
      try {
        localId = (await docker.getImage(name).inspect()).Id;
      } catch (err) {
        throw new CutterError(
          'NOT_FOUND',
          `image ${name} is not on the local Docker engine (${errorMessage(err)}); pull or build it first, or give --input TAR`,
        );
      }
    }
    const xfer = randomBytes(16).toString('hex');
    const remote = await link.ask(
      { type: 'image.inspect', xfer, image: name },
      (m): m is Extract<typeof m, { type: 'image' }> => m.type === 'image',
      3000,
      15_000,
    );
    if (remote.id === localId && !flags.force) {
      if (flags.json) printJson({ image: name, node: flags.node, id: localId, skipped: true, reason: 'the node has this image id' });
      else process.stdout.write(`${flags.node} already has ${name} (${localId.slice(0, 19)}): nothing to push (--force to push anyway)\n`);
      return 0;
    }
    let tar = flags.input;
    if (!tar) {
      tar = join(tmp!, 'image.tar');
      say(`saving ${name} from the local engine…`);
      await pipeline((await docker!.getImage(name).get()) as NodeJS.ReadableStream, createWriteStream(tar));
    }
    let bar: ProgressBar | undefined;
    const result = await putFile(
      link,
      tar,
      { kind: 'image.put', image: name },
      {
        onProgress: (done, total) => {
          if (!flags.json) (bar ??= new ProgressBar(`${name} → ${flags.node}`, total)).update(done);
        },
      },
    );
    bar?.end();
    if (result.imageId && result.imageId !== localId) say(`warning: the node loaded ${name} as ${result.imageId}, not ${localId}`);
    if (flags.json)
      printJson({
        image: name,
        node: flags.node,
        id: result.imageId,
        skipped: false,
        bytes: result.bytes,
        sha256: result.sha256,
        ms: result.ms,
        resumedFrom: result.resumedFrom,
      });
    else
      process.stdout.write(
        `pushed ${name} to ${flags.node}: ${formatBytes(result.bytes)} in ${formatDuration(result.ms)}, loaded as ${result.imageId}\n`,
      );
    return 0;
  } finally {
    await link.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
