/**
 * `cutter ollama models import models.yaml`: the seed scripts' model list (cutter.sh, Trapdoor)
 * as cutter's placement rules (`cutter server --ollama-placement FILE`, shared/ollama.ts).
 *
 * The seed file has two lists of model names (or `{model: NAME}` / `{name: NAME}` entries):
 * ```yaml
 * local: [gemma2:2b, nomic-embed-text]      # served on this machine
 * prefer_remote: [llama3:70b, "qwen2.5:*"]  # served by the other machines
 * ```
 * `local` becomes a rule pinning the models to this machine's node (`--local-node`, default its
 * node id: the hostname); `prefer_remote` a rule pinning them to the other nodes (`--remote-nodes`,
 * default every node the server knows but the local one). A cutter rule is a pin, not a
 * preference: the import says so, and names every key or field it cannot map.
 */
import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { defaultNodeId } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { PlacementFileSchema, type PlacementRule } from '../../shared/ollama.js';
import { NodeListResultSchema } from '../../shared/schemas/index.js';
import { printError, printJson } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { isJsonObject } from '../../shared/codec.js';

/** What an import produced: the rules, and what the user must know (mapping notes, what was left out). */
export interface ModelsImport {
  rules: PlacementRule[];
  notes: string[];
}

/** The model names of one seed list (strings, or objects with `model`/`name`); unmappable fields go to `notes`. */
function names(list: unknown, key: string, notes: string[]): string[] {
  if (list === undefined || list === null) return [];
  const items = Array.isArray(list) ? list : isJsonObject(list) ? Object.keys(list) : [list];
  const out: string[] = [];
  items.forEach((item, i) => {
    if (typeof item === 'string' && item.trim()) out.push(item.trim());
    else if (isJsonObject(item) && typeof (item.model ?? item.name) === 'string') {
      out.push(String(item.model ?? item.name));
      const extra = Object.keys(item).filter((k) => k !== 'model' && k !== 'name');
      if (extra.length)
        notes.push(`${key}[${i}]: ${extra.join(', ')} cannot be mapped (a placement rule has a model and nodes only); left out`);
    } else throw new CutterError('INVALID_ARGUMENT', `${key}[${i}]: expected a model name, got ${JSON.stringify(item)}`);
  });
  return out;
}

/**
 * Converts a parsed seed `models.yaml` (module comment).
 * @param localNode the node `local` models are pinned to.
 * @param remoteNodes the nodes `prefer_remote` models are pinned to (needed only when that list is not empty).
 * @throws CutterError INVALID_ARGUMENT when the document is not a seed model list, or remote nodes are needed and none is known.
 */
export function importSeedModels(raw: unknown, localNode: string, remoteNodes: string[]): ModelsImport {
  if (!isJsonObject(raw)) throw new CutterError('INVALID_ARGUMENT', 'expected a mapping with local: and prefer_remote: lists of models');
  if ('rules' in raw && !('local' in raw) && !('prefer_remote' in raw))
    throw new CutterError(
      'INVALID_ARGUMENT',
      "this is already cutter's placement format (rules:): use it as is with cutter server --ollama-placement FILE",
    );
  const notes: string[] = [];
  const local = names(raw.local, 'local', notes);
  const remote = names(raw.prefer_remote ?? raw.preferRemote, 'prefer_remote', notes);
  for (const k of Object.keys(raw).filter((k) => !['local', 'prefer_remote', 'preferRemote'].includes(k)))
    notes.push(`${k}: cannot be mapped (cutter reads local and prefer_remote); left out`);
  if (local.length === 0 && remote.length === 0) throw new CutterError('INVALID_ARGUMENT', 'no models under local: or prefer_remote:');
  const rules: PlacementRule[] = local.map((model) => ({ model, nodes: [localNode] }));
  if (remote.length > 0) {
    const others = remoteNodes.filter((n) => n !== localNode);
    if (others.length === 0)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `prefer_remote needs nodes other than ${localNode}: none has joined; give them with --remote-nodes a,b`,
      );
    rules.push(...remote.map((model) => ({ model, nodes: others })));
    notes.push(
      `prefer_remote is a pin in cutter, not a preference: ${remote.join(', ')} run only on ${others.join(', ')} (no fallback to ${localNode}); leave a model out to let the scheduler choose any node`,
    );
  }
  const parsed = PlacementFileSchema.safeParse({ rules });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CutterError('INVALID_ARGUMENT', `the converted rules are invalid at ${issue.path.join('.')}: ${issue.message}`);
  }
  return { rules: parsed.data.rules, notes };
}

type ImportFlags = GlobalFlags & { localNode?: string; remoteNodes?: string; output?: string };

/** Registers `cutter ollama models import` under `ollama`. */
export function registerOllamaModels(ollama: Command): void {
  const models = ollama.command('models').description('model placement files');
  withClientOptions(
    models
      .command('import')
      .argument('<file>', "the seed scripts' models.yaml (local: and prefer_remote: lists)")
      .description('convert a cutter.sh / Trapdoor models.yaml into placement rules for cutter server --ollama-placement'),
  )
    .option('--local-node <node>', "the node local models go to (default: this machine's node id)")
    .option('--remote-nodes <nodes>', 'the nodes prefer_remote models go to, comma separated (default: every other node the server knows)')
    .option('-o, --output <file>', 'write the placement file here (default: stdout)')
    .action((file: string, flags: ImportFlags) => {
      const fail = (err: unknown) => {
        printError(err, Boolean(flags.json));
        process.exit(1);
      };
      let raw: unknown;
      try {
        raw = parseYaml(readFileSync(file, 'utf8'));
      } catch (err) {
        return fail(new CutterError('INVALID_ARGUMENT', `cannot read ${file}: ${errorMessage(err)}`));
      }
      const localNode = flags.localNode ?? defaultNodeId();
      const finish = (remoteNodes: string[]): number => {
        const result = importSeedModels(raw, localNode, remoteNodes);
        const yaml = stringifyYaml({ rules: result.rules });
        if (flags.output) writeFileSync(flags.output, yaml);
        if (flags.json) printJson({ ...result, output: flags.output ?? null });
        else {
          if (!flags.output) process.stdout.write(yaml);
          for (const n of result.notes) process.stderr.write(`cutter: ${file}: ${n}\n`);
          process.stderr.write(
            `cutter: ${result.rules.length} rule(s)${flags.output ? ` written to ${flags.output}` : ''}; use them with cutter server --ollama-placement ${flags.output ?? 'FILE'}\n`,
          );
        }
        return 0;
      };
      const wantsRemote = isJsonObject(raw) && (raw.prefer_remote ?? raw.preferRemote) !== undefined;
      if (flags.remoteNodes !== undefined || !wantsRemote) {
        try {
          process.exit(
            finish(
              (flags.remoteNodes ?? '')
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean),
            ),
          );
        } catch (err) {
          return fail(err);
        }
      }
      return withClient(flags, async (client) => {
        const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
        return finish(nodes.map((n) => n.node));
      });
    });
}
