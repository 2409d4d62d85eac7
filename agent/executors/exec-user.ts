/**
 * `-u` for exec tasks, as `docker run -u` reads it: `name`, `uid`, `name:group`, `uid:gid` (a
 * name looked up in /etc/passwd and /etc/group, passwd(5) `name:pw:uid:gid:gecos:home:shell`,
 * group(5) `name:pw:gid:members`). A uid with no passwd entry is used as it is, with gid = uid
 * unless given. Switching users needs the agent to run as root (setuid(2): EPERM otherwise).
 */
import { readFileSync } from 'node:fs';
import { CutterError } from '../../shared/errors.js';

/** Who an exec task runs as: ids for spawn(), HOME and USER for its environment when known. */
export interface ExecUser {
  uid: number;
  gid: number;
  home?: string;
  name?: string;
}

function lines(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

const isId = (s: string) => /^\d+$/.test(s);

/**
 * Resolves `spec` (`-u` value) against this node's user database.
 * @param files where passwd and group are (a test may point elsewhere).
 * @throws CutterError START_FAILED when the user or group does not exist here, or the agent is not
 *   root and `spec` names another user (the message says to start the agent as root or drop -u).
 */
export function resolveExecUser(spec: string, files = { passwd: '/etc/passwd', group: '/etc/group' }): ExecUser {
  const [who, group] = spec.split(':', 2);
  if (!who) throw new CutterError('START_FAILED', `-u ${spec}: no user given`);
  const passwd = lines(files.passwd);
  const entry = passwd.find((f) => (isId(who) ? f[2] === who : f[0] === who));
  if (!entry && !isId(who)) throw new CutterError('START_FAILED', `-u ${spec}: no user "${who}" on this node (/etc/passwd)`);
  const uid = Number(entry ? entry[2] : who);
  let gid = entry ? Number(entry[3]) : uid;
  if (group) {
    if (isId(group)) gid = Number(group);
    else {
      const g = lines(files.group).find((f) => f[0] === group);
      if (!g) throw new CutterError('START_FAILED', `-u ${spec}: no group "${group}" on this node (/etc/group)`);
      gid = Number(g[2]);
    }
  }
  const me = process.getuid?.();
  if (me !== undefined && me !== 0 && (uid !== me || gid !== process.getgid?.()))
    throw new CutterError(
      'START_FAILED',
      `-u ${spec}: this node's agent runs as uid ${me}, not root, so it cannot run tasks as another user: drop -u, or start the agent as root`,
    );
  return { uid, gid, ...(entry ? { name: entry[0], home: entry[5] } : {}) };
}
