/**
 * A vitest reporter (listed after 'default' in vitest.config.ts) that ends the run with ONE line:
 * how many tests were skipped for which missing service, read from the tags test/services.ts puts
 * in their names ("[skipped: needs mosquitto — apt-get install mosquitto mosquitto-clients]"), e.g.
 *
 *   skipped for missing services: 41 (docker engine: 30 — apt-get install docker.io …; mosquitto: 11 — …)
 *
 * A test that lacks two services counts once in the total and once under each service. Skips for
 * other reasons (an "embedded broker only" test on the Mosquitto pass, `it.skip`) are counted apart,
 * as "other skips". A test pass left out because its service is missing (the e2e-mosquitto pass
 * without mosquitto, vitest.config.ts) is named on the same line.
 *
 * Reporter API: vitest 4 `Reporter.onTestRunEnd(testModules)`, `TestModule.children.allTests('skipped')`,
 * `TestCase.fullName` (node_modules/vitest/dist/reporters.d.ts).
 */
import type { Reporter, TestModule } from 'vitest/node';

/** Options from vitest.config.ts: test passes not run at all, each with the skip tag that says why. */
export interface SkipSummaryOptions {
  passesNotRun?: { name: string; tag: string }[];
}

const TAG = /\[skipped: needs (.+?) — ([^\]]+)\]/g;

/** Tallies skip tags in test names into one summary line. */
export default class SkipSummaryReporter implements Reporter {
  constructor(private readonly options: SkipSummaryOptions = {}) {}

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    process.stdout.write(`${summaryLine(testModules, this.options)}\n`);
  }
}

/** The summary line for a finished run: skipped tests tallied by the service their tags name. */
export function summaryLine(testModules: ReadonlyArray<TestModule>, options: SkipSummaryOptions = {}): string {
  const perService = new Map<string, { install: string; count: number }>();
  let forServices = 0;
  let other = 0;
  for (const mod of testModules) {
    for (const test of mod.children.allTests('skipped')) {
      const tags = [...test.fullName.matchAll(TAG)];
      if (tags.length === 0) {
        other++;
        continue;
      }
      forServices++;
      for (const [, label, install] of new Map(tags.map((m) => [m[1], m])).values()) {
        const entry = perService.get(label) ?? { install, count: 0 };
        entry.count++;
        perService.set(label, entry);
      }
    }
  }
  const parts = [
    forServices === 0
      ? 'no tests skipped for missing services'
      : `skipped for missing services: ${forServices} (${[...perService]
          .sort((a, b) => b[1].count - a[1].count)
          .map(([label, e]) => `${label}: ${e.count} — ${e.install}`)
          .join('; ')})`,
  ];
  for (const pass of options.passesNotRun ?? []) parts.push(`the ${pass.name} pass not run ${pass.tag}`);
  if (other > 0) parts.push(`other skips: ${other}`);
  return parts.join('; ');
}
