/**
 * Shared by the units and config tests: binary size constants (bytes) and `thrown`, the
 * CutterError a call throws.
 */
import { expect } from 'vitest';
import { CutterError } from '../../shared/errors.js';

export const KiB = 1024;
export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;

/** The CutterError `fn` throws (fails the test when it throws nothing or something else). */
export function thrown(fn: () => unknown): CutterError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CutterError);
    return err as CutterError;
  }
  throw new Error('expected a CutterError, nothing was thrown');
}
