/**
 * A systemd service unit for `cutter agent`, as a pure function (cli/commands/agent-install.ts
 * writes it). Rules from systemd's manuals:
 * - systemd.service(5) "Command lines": arguments are split on whitespace, double quotes group
 *   and `\` escapes inside them; `%` starts a specifier (written `%%`) and `$` a variable
 *   (written `$$`).
 * - A user unit (`systemctl --user`) goes to `~/.config/systemd/user/` and is wanted by
 *   `default.target`; a system unit goes to `/etc/systemd/system/` and is wanted by
 *   `multi-user.target` (systemd.special(7)). `loginctl enable-linger USER` starts a user's units
 *   at boot without a login (what a WSL2 notebook needs).
 * - `TimeoutStopSec` leaves room for the agent's drain on SIGTERM (`--drain-timeout`, 5 min).
 */

export interface UnitOptions {
  scope: 'user' | 'system';
  /** Node id (for the description). */
  nodeId: string;
  /** Absolute path of node, and the argv after it (main.js, `agent`, flags). */
  execPath: string;
  args: string[];
  /** Seconds systemd waits after SIGTERM before SIGKILL. */
  stopTimeoutSec: number;
  /** System units only: run as this user instead of root (it must be able to reach the Docker socket). */
  runAs?: string;
}

/** Quotes one argument for an ExecStart line when it needs it, escaping `\`, `"`, `%` and `$`. */
export function quoteArg(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Splits an ExecStart value back into argv (the inverse of `quoteArg` joined by spaces; enough of
 * systemd's rules for what this module writes).
 */
export function splitExecStart(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let arg = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') i++;
        arg += line[i++];
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') arg += line[i++];
    }
    out.push(arg.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return out;
}

/** The unit file's text. */
export function renderUnit(o: UnitOptions): string {
  const system = o.scope === 'system';
  return [
    '# Written by `cutter agent install`. The agent dials out to the broker: nothing listens here.',
    '[Unit]',
    `Description=cutter agent (node ${o.nodeId})`,
    'Wants=network-online.target',
    system ? 'After=network-online.target docker.service' : 'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[o.execPath, ...o.args].map(quoteArg).join(' ')}`,
    ...(system && o.runAs ? [`User=${o.runAs}`] : []),
    'Environment=NODE_ENV=production',
    'Restart=always',
    'RestartSec=5',
    '# SIGTERM makes the agent drain: running tasks get --drain-timeout to finish.',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${o.stopTimeoutSec}`,
    '',
    '[Install]',
    `WantedBy=${system ? 'multi-user.target' : 'default.target'}`,
    '',
  ].join('\n');
}
