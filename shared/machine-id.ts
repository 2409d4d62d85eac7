/**
 * A stable id of this machine, the same for the CLI and the agent on it, so `--prefer-local` can
 * find the submitting machine's node. machine-id(5) asks applications not to expose
 * /etc/machine-id itself ("should be considered confidential … hashed with a cryptographic, keyed
 * hash function, using a fixed, application-specific key", what systemd's
 * `sd_id128_get_machine_app_specific()` does): cutter sends HMAC-SHA256(machine-id, "cutter")
 * cut to 32 hex characters. Without /etc/machine-id (macOS, Windows, a container) the hostname
 * stands in, hashed the same way. `CUTTER_MACHINE_ID` (config `machineId`) overrides it, e.g. for
 * two agents on one machine.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Where Linux keeps the machine id (systemd; dbus' older copy second). */
const SOURCES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

let cached: string | undefined;

/**
 * This machine's id for cutter: 32 lower-case hex characters (or `override` as given).
 * @param override a configured id (`machineId`), used as is.
 */
export function machineId(override?: string): string {
  if (override) return override;
  if (cached) return cached;
  let raw = '';
  for (const path of SOURCES) {
    try {
      raw = readFileSync(path, 'utf8').trim();
    } catch {
      // Not there (macOS, Windows, a minimal container): try the next source.
    }
    if (raw) break;
  }
  cached = createHmac('sha256', raw || `host:${hostname()}`)
    .update('cutter')
    .digest('hex')
    .slice(0, 32);
  return cached;
}
