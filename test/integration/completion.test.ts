/**
 * `cutter completion bash|zsh|fish`: the script the CLI prints, loaded into the real shell, completes
 * what a user types — commands, subcommands and aliases, and options after the values of options
 * that take one. bash and zsh run the completion function with the words a TAB would give it;
 * fish answers `complete -C`, its own "what would TAB offer here".
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempDir } from '../harness.js';
import { needs } from '../services.js';

async function script(shell: string): Promise<string> {
  const r = await cli(['completion', shell]);
  expect(r.code, r.stderr).toBe(0);
  const path = join(tempDir(), `cutter.${shell}`);
  writeFileSync(path, r.stdout);
  return path;
}

/** What the bash-style function offers for `words` (the last one being completed), run in `shell`. */
function offered(shell: 'bash' | 'zsh', file: string, words: string[]): string[] {
  const arr = words.map((w) => `'${w}'`).join(' ');
  // zsh's bashcompinit runs the function with KSH_ARRAYS set (0-based arrays, as in bash): so does this.
  const prelude = shell === 'zsh' ? 'autoload -U compinit && compinit -u >/dev/null 2>&1; setopt ksharrays; ' : '';
  const body = `${prelude}source ${file}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _cutter; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync(shell, shell === 'zsh' ? ['-f', '-c', body] : ['--norc', '--noprofile', '-c', body], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const all = r.stdout.split('\n').filter(Boolean);
  // zsh's compgen (bashcompinit) returns every candidate and leaves matching the typed prefix to
  // compadd, the completion system's own step: that is done here.
  const typed = words.at(-1) ?? '';
  return (shell === 'zsh' ? all.filter((w) => w.startsWith(typed)) : all).sort();
}

describe('cutter completion', () => {
  it('refuses an unknown shell, naming the ones it has', async () => {
    const r = await cli(['completion', 'tcsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('use one of bash, zsh, fish');
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('bash: commands, subcommands with aliases, options, and a value skipped', async () => {
    const f = await script('bash');
    expect(offered('bash', f, ['cutter', 'no'])).toEqual(['nodes']);
    expect(offered('bash', f, ['cutter', 'nodes', 'l'])).toEqual(['list', 'ls']);
    expect(offered('bash', f, ['cutter', 'nodes', 'ls', '--b'])).toEqual(['--broker']);
    // --node takes a value: "--me" after it completes among run's options, not the value's.
    expect(offered('bash', f, ['cutter', 'run', '--node', 'nb', '--me'])).toEqual(['--memory']);
    // The completion command itself is listed.
    expect(offered('bash', f, ['cutter', 'compl'])).toEqual(['completion']);
    // offload (run --auto-select, a seed command) completes as run does.
    expect(offered('bash', f, ['cutter', 'offl'])).toEqual(['offload']);
    expect(offered('bash', f, ['cutter', 'offload', '--me'])).toEqual(['--memory']);
    // Nothing invented: no option of another command leaks in.
    expect(offered('bash', f, ['cutter', 'cp', '--gr'])).toEqual([]);
  });

  const zsh = needs('zsh');
  it.skipIf(zsh.skip)(`zsh: the same function under bashcompinit${zsh.tag}`, async () => {
    const f = await script('zsh');
    expect(offered('zsh', f, ['cutter', 'tok'])).toEqual(['token']);
    expect(offered('zsh', f, ['cutter', 'token', 'create', '--ro'])).toEqual(['--role']);
  });

  const fish = needs('fish');
  it.skipIf(fish.skip)(`fish: complete -C offers what TAB would${fish.tag}`, async () => {
    const f = await script('fish');
    const complete = (line: string) => {
      const r = spawnSync('fish', ['--no-config', '-c', `source ${f}; complete -C '${line}'`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0])
        .sort();
    };
    expect(complete('cutter oll')).toEqual(['ollama']);
    expect(complete('cutter ollama p')).toEqual(['ps', 'pull']);
    expect(complete('cutter nodes drain --conn')).toEqual(['--connect-timeout']);
  });
});
