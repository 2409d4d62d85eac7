/**
 * `cutter cp LOCAL NODE:PATH` and `cutter cp NODE:PATH LOCAL`: file transfer straight between
 * this CLI and the node's agent over MQTT (cli/files/), with a progress bar on a terminal.
 * `cutter cp -r A:VOL/DIR B:VOL/DIR`: node to node, agent to agent (cli/files/relay.ts).
 */
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { durationFlag } from '../../shared/duration.js';
import { requireOnlineNode } from '../node-check.js';
import { CutterError } from '../../shared/errors.js';
import { ID_RE } from '../../shared/topics.js';
import { formatBytes, formatDuration } from '../../shared/units.js';
import { getFile } from '../../shared/transfer/get.js';
import { FileLink } from '../../shared/transfer/link.js';
import { putFile } from '../files/put.js';
import type { TransferResult } from '../../shared/transfer/transfer.js';
import { getTree, putTree, splitVolumePath, type TreeResult } from '../files/tree.js';
import { printJson } from '../output.js';
import { ProgressBar } from '../progress.js';
import { copyBetweenNodes } from '../files/relay.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/** `NODE:PATH` → its parts; null for a local path (one with a `/` before the first `:`, or no `:`). */
export function parseRemote(arg: string): { node: string; path: string } | null {
  const colon = arg.indexOf(':');
  if (colon <= 0) return null;
  const node = arg.slice(0, colon);
  if (node.includes('/')) return null;
  if (!ID_RE.test(node)) throw new CutterError('INVALID_ARGUMENT', `"${node}" in "${arg}" is not a node id`);
  const path = arg.slice(colon + 1);
  if (!path) throw new CutterError('INVALID_ARGUMENT', `"${arg}" names no path on the node`);
  return { node, path };
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** Human summary of a finished transfer. */
function describe(r: TransferResult): string {
  const rate = r.bytes / Math.max(0.001, r.ms / 1000);
  const where = r.direction === 'put' ? `${r.localPath} → ${r.node}:${r.remotePath}` : `${r.node}:${r.remotePath} → ${r.localPath}`;
  const resumed = r.resumedFrom.length ? `, resumed at ${r.resumedFrom.map(formatBytes).join(', ')}` : '';
  const kept = r.startOffset > 0 ? `, continued a partial file from ${formatBytes(r.startOffset)}` : '';
  return `${where}: ${formatBytes(r.bytes)} in ${formatDuration(r.ms)} (${formatBytes(rate)}/s${resumed}${kept}), SHA-256 ${r.sha256} verified by the ${r.direction === 'put' ? 'node' : 'CLI'}`;
}

/** Human summary of a finished `cp -r`. */
function describeTree(r: TreeResult): string {
  const where =
    r.direction === 'put' ? `${r.localDir} → ${r.node}:${r.volume}/${r.path}` : `${r.node}:${r.volume}/${r.path} → ${r.localDir}`;
  return (
    `${where}: ${r.filesSent} of ${r.files} files sent (${formatBytes(r.bytesSent)}), ` +
    `${r.filesSkipped} already there with the same SHA-256 (${formatBytes(r.bytesSkipped)} skipped)` +
    `${r.bytesResumed ? `, ${formatBytes(r.bytesResumed)} kept from an interrupted copy` : ''}, in ${formatDuration(r.ms)}`
  );
}

export function registerCp(program: Command): void {
  withClientOptions(
    program
      .command('cp')
      .argument('<source>', 'LOCAL or NODE:PATH')
      .argument('<destination>', 'NODE:PATH or LOCAL')
      .description("copy a file to or from a node (inside the node's --files-allow directories)"),
  )
    .option(
      '-r, --recursive',
      "copy a directory to or from a node's volume (NODE:VOLUME[/DIR]): a SHA-256 manifest per file, only missing or changed files move",
    )
    .option('--chunk-size <bytes>', 'bytes per chunk (default 524288, at most 1048576)')
    .option('--window <chunks>', 'chunks in flight before an ack (default 8)')
    .option('--stall <duration>', 'silence after which the transfer is resumed, e.g. 3s (default 3s)')
    .option('--timeout <duration>', 'silence after which the transfer fails, e.g. 2m (default 2m)')
    .action(
      (
        source: string,
        destination: string,
        flags: GlobalFlags & { chunkSize?: string; window?: string; stall?: string; timeout?: string; recursive?: boolean },
      ) =>
        withClient(flags, async (client) => {
          const from = parseRemote(source);
          const to = parseRemote(destination);
          // Node to node (cli/files/relay.ts): the agents move the files, this machine none.
          if (from && to) {
            if (!flags.recursive)
              throw new CutterError(
                'INVALID_ARGUMENT',
                'a node-to-node copy copies a volume directory: cutter cp -r A:VOLUME/DIR B:VOLUME/DIR',
              );
            const r = await copyBetweenNodes(client, from, to);
            if (flags.json) printJson(r);
            else
              process.stdout.write(
                `${source} → ${destination}: ${r.filesSent} of ${r.files} files sent node to node (${formatBytes(r.bytesSent)}), ` +
                  `${r.filesSkipped} already there with the same SHA-256, in ${formatDuration(r.ms)}; none passed through this machine\n`,
              );
            return 0;
          }
          if (Boolean(from) === Boolean(to))
            throw new CutterError(
              'INVALID_ARGUMENT',
              'exactly one of source and destination must be NODE:PATH (a local path with a colon: write it as ./name)',
            );
          const num = (v: string | undefined, name: string, min: number, max: number) => {
            if (v === undefined) return undefined;
            const n = Number(v);
            if (!Number.isInteger(n) || n < min || n > max)
              throw new CutterError('INVALID_ARGUMENT', `--${name} must be an integer from ${min} to ${max}`);
            return n;
          };
          const chunkBytes = num(flags.chunkSize, 'chunk-size', 1024, 1024 * 1024) ?? 512 * 1024;
          const opts = {
            chunkBytes,
            windowBytes: (num(flags.window, 'window', 1, 64) ?? 8) * chunkBytes,
            stallMs: flags.stall === undefined ? undefined : durationFlag('--stall', flags.stall, { min: 100, max: 600_000 }),
            timeoutMs: flags.timeout === undefined ? undefined : durationFlag('--timeout', flags.timeout, { min: 1000, max: 86_400_000 }),
          };
          const remote = (from ?? to)!;
          await requireOnlineNode(client, remote.node, `${remote.node}:`);
          const link = new FileLink(client.mqtt, client.topics, remote.node, client.clientId);
          await link.open();
          let bar: ProgressBar | undefined;
          const onProgress = (done: number, total: number) => {
            if (flags.json) return;
            (bar ??= new ProgressBar(from ? `${remote.node}:${basename(remote.path)}` : basename(source), total)).update(done);
          };
          if (flags.recursive) {
            const { volume, path } = splitVolumePath(remote.path);
            let tree: TreeResult;
            const label = `${remote.node}:${remote.path}`;
            const onTreeProgress = (done: number, total: number) => {
              if (!flags.json) (bar ??= new ProgressBar(label, total)).update(done);
            };
            try {
              tree = to
                ? await putTree(link, source, volume, path, { ...opts, onProgress: onTreeProgress })
                : await getTree(link, volume, path, destination, { ...opts, onProgress: onTreeProgress });
            } finally {
              bar?.end();
              await link.close();
            }
            if (flags.json) printJson(tree);
            else process.stdout.write(`${describeTree(tree)}\n`);
            return 0;
          }
          let result: TransferResult;
          try {
            if (to) {
              const remotePath = to.path.endsWith('/') ? to.path + basename(source) : to.path;
              result = await putFile(link, source, { kind: 'put', remotePath }, { ...opts, onProgress });
            } else {
              const local = isDir(destination) ? join(destination, basename(from!.path)) : destination;
              result = await getFile(link, from!.path, local, { ...opts, onProgress });
            }
          } finally {
            bar?.end();
            await link.close();
          }
          if (flags.json) printJson(result);
          else process.stdout.write(`${describe(result)}\n`);
          return 0;
        }),
    );
}
