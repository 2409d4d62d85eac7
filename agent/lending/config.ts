/**
 * The agent's lending policy from its config (issue 17): the policy file (`--lend-policy FILE`,
 * YAML or JSON: YAML 1.2 reads JSON too) with the `--lend-*` flags (or CUTTER_LEND_* env) over it.
 * No file and no flag: no policy (the node lends as before and announces no `lending`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AgentConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { type LendingFile, LendingFileSchema, type LendingPolicy, policyFromFile } from '../../shared/lending.js';

/**
 * The YAML parser, loaded only for a policy file: most agents have none, and the parser is the
 * largest module an idle agent would otherwise hold for nothing (bench/profile.md, "Agent idle
 * footprint"). Synchronous (`require`), as the agent reads its policy in its constructor.
 */
const parseYaml = (text: string): unknown => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);

/** Default sampling interval, ms. */
export const DEFAULT_SAMPLE_MS = 5_000;

/**
 * @returns the policy (undefined when none is configured) and the sampling interval, ms.
 * @throws CutterError INVALID_CONFIG naming the file and the field when the file cannot be read or is wrong.
 */
export function lendingFromConfig(c: AgentConfig): { policy?: LendingPolicy; sampleMs: number } {
  let file: Record<string, unknown> = {};
  if (c.lendPolicy) {
    try {
      const v = parseYaml(readFileSync(c.lendPolicy, 'utf8'));
      if (v !== null && (typeof v !== 'object' || Array.isArray(v))) throw new Error('it is not a mapping of policy fields');
      file = (v ?? {}) as Record<string, unknown>;
    } catch (err) {
      throw new CutterError('INVALID_CONFIG', `cannot read lending policy ${c.lendPolicy}: ${errorMessage(err)}`);
    }
  }
  const flags: Record<string, unknown> = {
    acOnly: c.lendAcOnly,
    idleMinutes: c.lendIdleMinutes,
    maxOwnerCpuPercent: c.lendMaxOwnerCpu,
    minFreeMemory: c.lendMinFreeMemory,
    windows: c.lendWindows
      ?.split(';')
      .map((w) => w.trim())
      .filter(Boolean),
    preemptAfter: c.lendPreemptAfterMs,
    sample: c.lendSampleMs,
  };
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  if (!c.lendPolicy && Object.keys(given).length === 0) return { sampleMs: DEFAULT_SAMPLE_MS };
  const parsed = LendingFileSchema.safeParse({ ...file, ...given });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CutterError(
      'INVALID_CONFIG',
      `lending policy${c.lendPolicy ? ` ${c.lendPolicy}` : ''}: ${issue.path.join('.') || 'policy'}: ${issue.message} (fields: enabled, mode, acOnly, idleMinutes, maxOwnerCpuPercent, minFreeMemory, windows, preemptAfter, sample)`,
    );
  }
  const { policy, sampleMs } = policyFromFile(parsed.data as LendingFile);
  return { policy, sampleMs: Math.max(200, sampleMs ?? DEFAULT_SAMPLE_MS) };
}
