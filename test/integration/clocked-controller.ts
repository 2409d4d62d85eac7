/**
 * A real Controller for integration tests: on `brokerUrl` (a bare Aedes, test/e2e/recovery-helpers.ts
 * `bareBroker`), with a clock the test moves, a fresh data dir, a silent log and the defaults the
 * tests share; `extra` sets further ControllerOptions (forgetAfterMs …).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Controller, type ControllerOptions } from '../../controller/controller.js';

/** Starts the controller; the caller stops it (`controller.stop()`). */
export async function startClockedController(
  brokerUrl: string,
  now: () => number,
  extra: Partial<ControllerOptions> = {},
): Promise<Controller> {
  const controller = new Controller({
    brokerUrl,
    prefix: 'cutter',
    leaseMs: 10_000,
    policy: 'spread',
    keepFinished: 100,
    dataDir: mkdtempSync(join(tmpdir(), 'cutter-controller-')),
    maxLogBytes: 1024 ** 2,
    startupGraceMs: 0,
    log: pino({ level: 'silent' }),
    now,
    minFreeBytes: 0,
    ...extra,
  });
  await controller.start();
  return controller;
}
