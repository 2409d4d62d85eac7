/**
 * A throwaway OpenSSH server (Debian's openssh-server) on a loopback port with a generated host
 * key and a generated client key, so the dispatch benchmark can time `ssh localhost docker run …`
 * — the approach users script today — beside `cutter run`. Needs root (sshd switches users) or
 * at least a readable /usr/sbin/sshd; `startSshd` throws with the reason otherwise and the
 * benchmark notes the skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../scripts/procs.js';

/** Where Debian's openssh-server installs the daemon. */
const SSHD = '/usr/sbin/sshd';

/** A running benchmark sshd. */
export interface Sshd {
  /** The argv prefix that runs a command on localhost through this sshd: `ssh -i KEY -p PORT … user@127.0.0.1`. */
  ssh: string[];
  stop(): void;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

/**
 * Starts `sshd -D` on a free loopback port and waits until `ssh … true` works (10 s at most).
 * @throws when sshd is missing, will not start, or the login does not work, with the reason.
 */
export async function startSshd(): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`no ${SSHD} (install openssh-server)`);
  const dir = mkdtempSync(join(tmpdir(), 'cutter-bench-ssh-'));
  chmodSync(dir, 0o700);
  const port = await freePort();
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  const conf = join(dir, 'sshd_config');
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  // sshd's privilege separation directory (Debian's unit creates it; a container may not have it).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  // Without a listener a failed spawn (e.g. not executable) would end the whole benchmark.
  let spawnError: Error | undefined;
  child.on('error', (e) => {
    spawnError = e;
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const ssh = [
    'ssh',
    '-i',
    join(dir, 'client_key'),
    '-p',
    String(port),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    `${userInfo().username}@127.0.0.1`,
  ];
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (spawnError) throw new Error(`sshd did not start: ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${err.trim().slice(-500)}`);
    if (spawnSync(ssh[0], [...ssh.slice(1), 'true'], { stdio: 'ignore' }).status === 0) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ssh to the benchmark sshd does not work: ${err.trim().slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { ssh, stop: () => child.kill('SIGTERM') };
}
