import { readFileSync } from 'node:fs';

/**
 * cutter's version, read once from package.json: two directories above dist/shared/ (or the bundled
 * CLI's dist/cli/main.js), one above shared/, three above the bundle's dist/cli/chunks/. npm name `cutter-mesh`.
 */
export const VERSION: string = (() => {
  for (const rel of ['../../package.json', '../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if ((pkg.name === 'cutter-mesh' || pkg.name === 'cutter') && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
})();

/** Version of the wire protocol; topics carry it as `v1`, payloads as `v: 1`. */
export const PROTOCOL_VERSION = 1 as const;
