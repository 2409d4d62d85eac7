/**
 * Shell completion scripts for `cutter completion bash|zsh|fish`, generated from the CLI's own
 * commander tree, so every command, subcommand, alias and option the CLI accepts completes, and
 * nothing it does not. The scripts are static (a table of words per command path): completing
 * never starts Node or dials the broker, so a TAB costs what the shell's own matching costs.
 *
 * Shell facts used (their manuals): bash `complete -F` with COMP_WORDS/COMP_CWORD/COMPREPLY and
 * `compgen -W` (bash(1) "Programmable Completion"); zsh runs bash completion functions through
 * `bashcompinit` (zshcompsys(1), "bashcompinit"); fish `complete -c CMD -n CONDITION -a WORDS
 * -l LONG -s SHORT -d DESCRIPTION` with `__fish_seen_subcommand_from` / `__fish_use_subcommand`
 * (fish's `complete` documentation).
 */
import type { Command, Option } from 'commander';

/** The shells a script is written for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** One command of the tree: its path from the root (`[]` for `cutter`), names, options and children. */
export interface CompletionNode {
  /** Subcommand names from the root, e.g. `['nodes', 'list']`. */
  path: string[];
  /** Its name and aliases, e.g. `['list', 'ls']`. */
  names: string[];
  /** First line of its description. */
  description: string;
  /** Options: long and short flags, whether they take a value, first line of the description. */
  options: { long?: string; short?: string; takesValue: boolean; description: string }[];
  children: CompletionNode[];
}

const firstLine = (s: string) => s.split('\n')[0].trim();

function optionsOf(cmd: Command): CompletionNode['options'] {
  const opts = (cmd.options as readonly Option[]).filter((o) => !o.hidden);
  const list = opts.map((o) => ({
    ...(o.long ? { long: o.long } : {}),
    ...(o.short ? { short: o.short } : {}),
    takesValue: o.required || o.optional,
    description: firstLine(o.description ?? ''),
  }));
  list.push({ long: '--help', short: '-h', takesValue: false, description: 'display help for command' });
  return list;
}

/** The completion tree of `program` (help commands left out). */
export function completionTree(program: Command, path: string[] = []): CompletionNode {
  const children = (program.commands as readonly Command[])
    .filter((c) => c.name() !== 'help')
    .map((c) => completionTree(c, [...path, c.name()]));
  return {
    path,
    names: [program.name(), ...program.aliases()],
    description: firstLine(program.description()),
    options: optionsOf(program),
    children,
  };
}

function walk(node: CompletionNode, visit: (n: CompletionNode) => void): void {
  visit(node);
  for (const c of node.children) walk(c, visit);
}

/** Single-quotes `s` for bash, zsh and fish (`'` becomes `'\''`). */
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** bash: a function that finds the command path in COMP_WORDS, then offers its subcommands and options. */
function bash(root: CompletionNode): string {
  const words: string[] = [];
  const valued: string[] = [];
  walk(root, (n) => {
    const key = n.path.join(' ');
    const list = [...n.children.flatMap((c) => c.names), ...n.options.flatMap((o) => [o.long, o.short].filter(Boolean) as string[])];
    words.push(`    ${quote(key)}) cwords=${quote(list.join(' '))} ;;`);
    for (const o of n.options.filter((o) => o.takesValue)) {
      for (const f of [o.long, o.short]) if (f) valued.push(`${key}|${f}`);
    }
  });
  const children: string[] = [];
  walk(root, (n) => {
    for (const c of n.children)
      for (const name of c.names) children.push(`    ${quote(`${n.path.join(' ')}|${name}`)}) cpath=${quote(c.path.join(' '))} ;;`);
  });
  return `# cutter completion for bash. Load it with:  source <(cutter completion bash)
# or save it as ~/.local/share/bash-completion/completions/cutter
_cutter() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cpath="" cwords="" i w
  local valued=${quote(` ${valued.join(' ')} `)}
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == "--" ]] && return 0
    if [[ "$w" == -* ]]; then
      [[ "$valued" == *" $cpath|$w "* ]] && ((i++))
      continue
    fi
    case "$cpath|$w" in
${children.join('\n')}
    *) break ;;
    esac
  done
  # An option that takes a value: complete files, as the value is often a path.
  if [[ "$valued" == *" $cpath|$prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return 0
  fi
  case "$cpath" in
${words.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$cwords" -- "$cur"))
}
complete -o default -F _cutter cutter
`;
}

/** zsh: the bash function, run by zsh's own bashcompinit (its variables avoid zsh's special `path` and `words`). */
function zsh(root: CompletionNode): string {
  return `#compdef cutter
# cutter completion for zsh. Load it with:  source <(cutter completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash(root).split('\n').slice(2).join('\n')}`;
}

/** fish: one `complete` line per subcommand and option, conditioned on the command path seen so far. */
function fish(root: CompletionNode): string {
  const lines = ['# cutter completion for fish. Load it with:  cutter completion fish | source', 'complete -c cutter -f'];
  walk(root, (n) => {
    // The condition: every word of the path seen, and none of this command's own subcommands yet.
    const seen = n.path.map((p) => `__fish_seen_subcommand_from ${p}`);
    const sub = n.children.flatMap((c) => c.names);
    const notYet = sub.length ? [`not __fish_seen_subcommand_from ${sub.join(' ')}`] : [];
    const cond = n.path.length === 0 ? ['__fish_use_subcommand'] : [...seen, ...notYet];
    const c = quote(cond.join('; and '));
    for (const child of n.children) {
      for (const name of child.names) lines.push(`complete -c cutter -n ${c} -a ${quote(name)} -d ${quote(child.description)}`);
    }
    for (const o of n.options) {
      const flags = [o.long ? `-l ${o.long.slice(2)}` : '', o.short ? `-s ${o.short.slice(1)}` : ''].filter(Boolean).join(' ');
      lines.push(`complete -c cutter -n ${c} ${flags}${o.takesValue ? ' -r -F' : ''} -d ${quote(o.description)}`);
    }
  });
  return `${lines.join('\n')}\n`;
}

/**
 * `cutter offload` is `cutter run --auto-select` rewritten before commander sees it (cli/main.ts),
 * so it is not in the tree: it completes as `run` does.
 */
function withOffload(root: CompletionNode): CompletionNode {
  const run = root.children.find((c) => c.names[0] === 'run');
  if (!run || root.children.some((c) => c.names[0] === 'offload')) return root;
  const offload = { ...run, path: ['offload'], names: ['offload'], description: 'cutter run --auto-select: run where it fits best' };
  return { ...root, children: [...root.children, offload] };
}

/** The completion script of `program` for `shell`. */
export function completionScript(program: Command, shell: Shell): string {
  const root = withOffload(completionTree(program));
  return shell === 'bash' ? bash(root) : shell === 'zsh' ? zsh(root) : fish(root);
}
