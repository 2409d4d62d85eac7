/**
 * Holds V8's optimising compiler (TurboFan) from an agent's start until its first work.
 *
 * An agent's start runs code it never runs again: the module loader resolving the bundle's chunks
 * (`getPathFromURLPosix`, `normalizeString`, URL getters) and zod building each wire schema
 * (`$constructor.init`, `check`, `~standard`); V8 optimised 11 such functions in the first second
 * (`node --trace-opt`). Idle, an agent then runs its heartbeat once a second, and V8 optimised a
 * dozen functions of it (Buffer, events, os) within ~15 s. Each is a few hundred microseconds of
 * compiling, but TurboFan's first use costs the process its compiler's code pages and zone
 * memory: ~4 MiB of an idle agent's ~60 MiB RSS (bench/profile.md, "An idle agent's CPU and peak").
 *
 * So `cutter agent` turns TurboFan off before it loads the agent, and agent/agent.ts turns it on
 * at the first message the agent receives (an assignment, a file transfer, a port, stdin …) or
 * when it re-adopts a running task at start: a task's output stream, a transfer and the
 * controller's traffic are optimised as before; the idle loop runs in the interpreter and
 * Sparkplug, which costs it no measurable CPU (paired runs in bench/profile.md).
 *
 * V8 reads `--turbofan` each time it decides whether to optimise a function (TieringManager,
 * V8 11.3), so `v8.setFlagsFromString` after the process started takes effect (checked in
 * test/unit/start-compiler.test.ts). A `--turbofan`, `--no-turbofan`, `--opt` or `--no-opt` the
 * user gave on node's command line or in NODE_OPTIONS is left alone.
 */
import { setFlagsFromString } from 'node:v8';

const userSet = () =>
  [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--(no-)?(turbofan|opt)\b/.test(a));

let held = false;

/** Turns TurboFan off until `releaseOptimisingCompiler()`. No-op when the user set the flag. */
export function holdOptimisingCompiler(): void {
  if (held || userSet()) return;
  setFlagsFromString('--no-turbofan');
  held = true;
}

/** Turns TurboFan back on; no-op unless held. */
export function releaseOptimisingCompiler(): void {
  if (!held) return;
  held = false;
  setFlagsFromString('--turbofan');
}
