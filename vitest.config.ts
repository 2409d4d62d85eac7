import { defineConfig } from 'vitest/config';
import { needs, skipTag } from './test/services.js';

/**
 * Two passes, one command (`npm test`):
 *  1. `default`: every test, the end-to-end ones on cutter's embedded Aedes broker;
 *  2. `e2e-mosquitto`: the end-to-end tests again with CUTTER_TEST_BROKER=mosquitto — each test
 *     server is a real Mosquitto plus `cutter server --broker` (test/harness.ts). It runs after the
 *     first pass (groupOrder), not beside it: both passes use the same node names and Docker labels.
 *     Without mosquitto on the PATH the pass is left out and the last line of the run says so
 *     (with CUTTER_REQUIRE_ALL=1 a missing mosquitto fails here instead, test/services.ts).
 *
 * Stress tests (STRESS below) run in each pass after the other files, one at a time: they judge the
 * system under a load they make themselves (10 agents SIGKILLed and restarted under 2,000 tasks),
 * and on a 2-core machine another file's load beside them makes them measure that file instead.
 * The CPU-burner lending tests (QUIET below) join them in the first pass, for the same reason.
 *
 * Tests that need a service the machine lacks are skipped with the reason in their name
 * (test/services.ts); test/skip-summary.ts ends the run with one line tallying them.
 */
const mosquitto = needs('mosquitto');
/** Run alone, after the rest of their pass (see above). */
const STRESS = ['test/e2e/flood.test.ts'];
/**
 * Run alone too, in the first pass only: CPU burners outside cutter can be told from the machine's
 * other load only on a quiet machine, and the broker plays no part in what they test.
 */
const QUIET = ['test/e2e/lending-burner.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: [
      'default',
      [
        './test/skip-summary.ts',
        { passesNotRun: mosquitto.skip ? [{ name: 'e2e-mosquitto (the e2e tests on Mosquitto)', tag: skipTag('mosquitto') }] : [] },
      ],
    ],
    projects: [
      {
        extends: true,
        test: { name: 'default', include: ['test/**/*.test.ts'], exclude: [...STRESS, ...QUIET], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'stress', include: [...STRESS, ...QUIET], maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
      ...(mosquitto.skip
        ? []
        : [
            {
              extends: true as const,
              test: {
                name: 'e2e-mosquitto',
                include: ['test/e2e/**/*.test.ts'],
                // Already Mosquitto tests (each starts its own), run in the first pass.
                exclude: ['test/e2e/mosquitto.test.ts', 'test/e2e/ha-postgres.test.ts', ...STRESS, ...QUIET],
                env: { CUTTER_TEST_BROKER: 'mosquitto' },
                sequence: { groupOrder: 2 },
              },
            },
            {
              extends: true as const,
              test: {
                name: 'stress-mosquitto',
                include: STRESS,
                maxWorkers: 1,
                env: { CUTTER_TEST_BROKER: 'mosquitto' },
                sequence: { groupOrder: 3 },
              },
            },
          ]),
    ],
  },
});
