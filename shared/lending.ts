/**
 * The lending policy of a node (issue 17): when a notebook or desktop lends its spare capacity to
 * the mesh, as pure functions — the policy's shape, time windows (`mon-fri 22:00-07:00`,
 * `sat,sun *`) and the verdict over one sample of the owner's state. The agent samples and acts
 * (agent/lending/), the scheduler reads the state the node announces (NodeStatus `lending`).
 *
 * Modelled on BOINC's computing preferences (run on batteries or not, only after N minutes of
 * user idle time, suspend when non-BOINC CPU use exceeds X%, daily time windows) and HTCondor's
 * desktop policy (SUSPEND, CONTINUE, PREEMPT after MaxSuspendTime); see
 * /work/shared/reference/nodes-gpus-lending-facts.md §3-5 for the sources.
 */
import { z } from 'zod';
import { DurationSchema, SizeSchema } from './config/common.js';
import { formatBytes } from './units.js';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
/** Longest window spec, characters; most windows in one policy. */
export const MAX_WINDOW_CHARS = 100;
export const MAX_WINDOWS = 16;

/** One parsed window: the days it starts on (0 = Sunday, local time) and its minutes of the day. */
export interface TimeWindow {
  /** The spec as written (trimmed, lower case), for reasons. */
  spec: string;
  days: ReadonlySet<number>;
  /** Start, minutes after local midnight (0-1439). */
  start: number;
  /** End, minutes after local midnight (1-1440); below `start`: the window runs past midnight. */
  end: number;
}

function parseDay(s: string): number {
  const i = DAYS.indexOf(s.slice(0, 3) as (typeof DAYS)[number]);
  if (i < 0 || !DAYS[i].startsWith(s.slice(0, 3)) || s.length < 3)
    throw new Error(`"${s}" is not a day (mon, tue, wed, thu, fri, sat, sun)`);
  return i;
}

function parseTime(s: string, what: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(s);
  const h = m ? Number(m[1]) : Number.NaN;
  const min = m ? Number(m[2]) : Number.NaN;
  if (!m || min > 59 || h > 24 || (h === 24 && min !== 0)) throw new Error(`${what} "${s}" is not a time HH:MM (00:00-24:00)`);
  return h * 60 + min;
}

/**
 * Parses a window: `DAYS [TIMES]`. DAYS is `*` (or `daily`), or days and ranges joined by commas
 * (`mon-fri`, `sat,sun`, `fri-mon` wraps); TIMES is `*` (all day, the default) or `HH:MM-HH:MM`
 * in local time. A window whose end is before its start runs past midnight: `mon-fri 22:00-07:00`
 * is open from each of those days' 22:00 to 07:00 of the next morning (so Saturday 03:00 is
 * inside, Monday 03:00 is not).
 * @throws Error saying what is wrong and how it should look.
 */
export function parseWindow(text: string): TimeWindow {
  const spec = text.trim().toLowerCase().replace(/\s+/g, ' ');
  if (spec.length === 0 || spec.length > MAX_WINDOW_CHARS)
    throw new Error(`a time window is 1-${MAX_WINDOW_CHARS} characters, like "mon-fri 22:00-07:00"`);
  const [dayPart, timePart = '*', ...rest] = spec.split(' ');
  if (rest.length)
    throw new Error(`time window "${text}" has more than days and times: write it like "mon-fri 22:00-07:00" or "sat,sun *"`);
  const days = new Set<number>();
  if (dayPart === '*' || dayPart === 'daily') for (let d = 0; d < 7; d++) days.add(d);
  else
    for (const item of dayPart.split(',')) {
      const [a, b, extra] = item.split('-');
      if (extra !== undefined || !a) throw new Error(`"${item}" in time window "${text}" is not a day or a range like mon-fri`);
      const from = parseDay(a);
      const to = b === undefined ? from : parseDay(b);
      for (let d = from; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === to) break;
      }
    }
  let start = 0;
  let end = 1440;
  if (timePart !== '*') {
    const [a, b, extra] = timePart.split('-');
    if (b === undefined || extra !== undefined) throw new Error(`times "${timePart}" in time window "${text}" must be HH:MM-HH:MM or *`);
    start = parseTime(a, 'start');
    end = parseTime(b, 'end');
    if (start === 1440) throw new Error(`time window "${text}" cannot start at 24:00`);
    if (end === 0) end = 1440;
    if (start === end) throw new Error(`time window "${text}" starts and ends at the same time: write * for the whole day`);
  }
  return { spec, days, start, end };
}

/** Whether local time `at` is inside the window (see parseWindow for windows past midnight). */
export function inWindow(w: TimeWindow, at: Date): boolean {
  const day = at.getDay();
  const minute = at.getHours() * 60 + at.getMinutes();
  if (w.start < w.end) return w.days.has(day) && minute >= w.start && minute < w.end;
  return (w.days.has(day) && minute >= w.start) || (w.days.has((day + 6) % 7) && minute < w.end);
}

const windowList = z
  .array(z.string().max(MAX_WINDOW_CHARS))
  .max(MAX_WINDOWS)
  .superRefine((list, ctx) => {
    for (const w of list) {
      try {
        parseWindow(w);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }
  });

/**
 * A lending policy as the agent applies it and announces it (NodeStatus `lending.policy`); every
 * condition left out is not checked. Bytes and ms. Bounded: it also travels on the wire.
 */
export const LendingPolicySchema = z.object({
  /** Off: the node lends nothing (`closed: lending switched off`); the Home Assistant switch. */
  enabled: z.boolean().default(true),
  /** `auto`: the conditions below decide; `always`: lend regardless of them (BOINC's "run always"). */
  mode: z.enum(['auto', 'always']).default('auto'),
  /** Lend only on mains power (no system battery discharging, some AC/USB supply online). */
  acOnly: z.boolean().default(false),
  /** Lend only when the owner has been idle at least this many minutes (logind IdleHint/IdleSinceHint). */
  idleMinutes: z.number().min(0).max(10_080).optional(),
  /** Lend only while the owner's CPU use (all cores, minus cutter's tasks) stays at or under this, %. */
  maxOwnerCpuPercent: z.number().min(0).max(100).optional(),
  /** Lend only while at least this much memory is available (MemAvailable), bytes. */
  minFreeMemory: z.number().int().nonnegative().optional(),
  /** Lend only inside one of these windows (local time; see parseWindow). Absent or empty: any time. */
  windows: windowList.optional(),
  /** How long a task stays suspended before it is stopped and placed elsewhere (HTCondor's MaxSuspendTime), ms. */
  preemptAfterMs: z
    .number()
    .int()
    .nonnegative()
    .max(7 * 86_400_000)
    .default(600_000),
});
export type LendingPolicy = z.infer<typeof LendingPolicySchema>;

/** A change to a policy (`cutter nodes policy`, Home Assistant): only the fields given change; `null` removes a condition. */
export const LendingPatchSchema = z.object({
  enabled: z.boolean().optional(),
  mode: z.enum(['auto', 'always']).optional(),
  acOnly: z.boolean().optional(),
  idleMinutes: z.number().min(0).max(10_080).nullable().optional(),
  maxOwnerCpuPercent: z.number().min(0).max(100).nullable().optional(),
  minFreeMemory: z.number().int().nonnegative().nullable().optional(),
  windows: windowList.nullable().optional(),
  preemptAfterMs: z
    .number()
    .int()
    .nonnegative()
    .max(7 * 86_400_000)
    .optional(),
});
export type LendingPatch = z.infer<typeof LendingPatchSchema>;

/** Applies a patch: given fields replace, `null` removes a condition. */
export function patchPolicy(p: LendingPolicy, patch: LendingPatch): LendingPolicy {
  const out: Record<string, unknown> = { ...p };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return LendingPolicySchema.parse(out);
}

/**
 * A policy file (`cutter agent --lend-policy FILE`, YAML or JSON) or the agent's `--lend-*` flags:
 * the policy's fields in people's units — `minFreeMemory: 2g`, `preemptAfter: 10m`, `sample: 5s`.
 */
export const LendingFileSchema = z
  .object({
    enabled: z.boolean().optional(),
    mode: z.enum(['auto', 'always']).optional(),
    acOnly: z.boolean().optional(),
    idleMinutes: z.coerce.number().min(0).max(10_080).optional(),
    maxOwnerCpuPercent: z.coerce.number().min(0).max(100).optional(),
    minFreeMemory: SizeSchema.optional(),
    windows: z.union([windowList, z.string().max(MAX_WINDOW_CHARS)]).optional(),
    preemptAfter: DurationSchema.optional(),
    /** How often the agent samples the owner's state, ms (`5s`); not part of the announced policy. */
    sample: DurationSchema.optional(),
  })
  .strict();
export type LendingFile = z.infer<typeof LendingFileSchema>;

/** The announced policy and the sampling interval (ms) from a file's or the flags' values. */
export function policyFromFile(f: LendingFile): { policy: LendingPolicy; sampleMs?: number } {
  const { preemptAfter, sample, windows, ...rest } = f;
  const policy = LendingPolicySchema.parse({
    ...rest,
    ...(windows !== undefined ? { windows: typeof windows === 'string' ? [windows] : windows } : {}),
    ...(preemptAfter !== undefined ? { preemptAfterMs: preemptAfter } : {}),
  });
  return { policy, ...(sample !== undefined ? { sampleMs: sample } : {}) };
}

/** One sample of the owner's side of the machine; null = could not be read (with why in the source). */
export interface OwnerSample {
  /** Some system battery discharges, or every AC/USB supply is offline; null: unknown. */
  onBattery: boolean | null;
  /** Seconds since the owner's last input; null: unknown (`idleSource` says why). */
  idleSec: number | null;
  /** Where the idle time came from (`logind`, `logind: no session`), or why it is unknown (`unknown: WSL2`). */
  idleSource: string;
  /** The owner's CPU use over the last interval: the host's busy time minus cutter's tasks', % of all cores; null on the first sample. */
  ownerCpuPercent: number | null;
  /** MemAvailable, bytes; null: unknown. */
  freeMemory: number | null;
}

/** Whether the node may lend now, and if not why (`on battery`, `outside mon-fri 22:00-07:00`). */
export type Verdict = { open: true; why?: string } | { open: false; why: string };

/**
 * Decides over one sample: lending off, outside every window, on battery, owner not idle long
 * enough (or idle unknown while an idle condition is set: closed, since an unknown owner may be
 * at the keyboard), owner CPU above the limit, too little free memory — the first that holds is
 * the reason. A condition whose value is unknown other than idle does not close the node.
 */
export function lendingVerdict(p: LendingPolicy, s: OwnerSample, now: Date): Verdict {
  if (!p.enabled) return { open: false, why: 'lending switched off' };
  if (p.mode === 'always') return { open: true, why: 'always' };
  if (p.windows?.length) {
    const ws = p.windows.map(parseWindow);
    if (!ws.some((w) => inWindow(w, now))) return { open: false, why: `outside ${ws.map((w) => w.spec).join(', ')}` };
  }
  if (p.acOnly && s.onBattery === true) return { open: false, why: 'on battery' };
  if (p.idleMinutes !== undefined && p.idleMinutes > 0) {
    if (s.idleSec === null) return { open: false, why: `owner idle time unknown (${s.idleSource})` };
    if (s.idleSec < p.idleMinutes * 60)
      return { open: false, why: `owner active (idle ${Math.floor(s.idleSec / 60)} of ${p.idleMinutes} min)` };
  }
  if (p.maxOwnerCpuPercent !== undefined && s.ownerCpuPercent !== null && s.ownerCpuPercent > p.maxOwnerCpuPercent)
    return { open: false, why: `owner CPU ${Math.round(s.ownerCpuPercent)}% > ${p.maxOwnerCpuPercent}%` };
  if (p.minFreeMemory !== undefined && s.freeMemory !== null && s.freeMemory < p.minFreeMemory)
    return { open: false, why: `free memory ${formatBytes(s.freeMemory)} < ${formatBytes(p.minFreeMemory)}` };
  return { open: true };
}

/** How a lending state reads: `lending`, `suspended: on battery`, `closed: outside 22:00-07:00`. */
export function describeLending(l: { state: string; reason?: string }): string {
  return l.reason && l.state !== 'lending' ? `${l.state}: ${l.reason}` : l.state;
}
