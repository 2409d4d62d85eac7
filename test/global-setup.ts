/**
 * Builds dist/ once before the suite: the end-to-end tests run the real `cutter` binary
 * (dist/cli/main.js) as a user would. Both test projects (vitest.config.ts) list this setup; the
 * build runs once per `vitest` process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  if (process.env.CUTTER_TEST_BUILT === '1') return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', root], { stdio: 'inherit' });
  process.env.CUTTER_TEST_BUILT = '1';
}
