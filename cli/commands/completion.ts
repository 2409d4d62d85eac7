/**
 * `cutter completion bash|zsh|fish`: prints the shell's completion script for every command the CLI
 * has (cli/completion.ts builds it from the commander tree).
 */
import type { Command } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.js';
import { CutterError } from '../../shared/errors.js';
import { printError, printJson } from '../output.js';

/** Registers `completion` on `program`; all other commands must be registered first (main.ts does). */
export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(cutter completion bash); zsh likewise; cutter completion fish | source')
    .argument('<shell>', `one of ${SHELLS.join(', ')}`)
    .option('--json', 'print {"shell", "script"} as JSON')
    .action((shell: string, opts: { json?: boolean }) => {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        printError(
          new CutterError('INVALID_CONFIG', `no completion for shell "${shell}": use one of ${SHELLS.join(', ')}`),
          opts.json ?? false,
        );
        process.exitCode = 2;
        return;
      }
      const script = completionScript(program, shell as Shell);
      if (opts.json) printJson({ shell, script });
      else process.stdout.write(script);
    });
}
