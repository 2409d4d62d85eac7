/**
 * Waiting on a promise with a bound: the agent's fencing and shutdown waits, and the controller's
 * hold of an attempt's end before its PUBACK (controller/controller.ts).
 */

/** Resolves true when `p` settles within `ms`, false otherwise (never rejects). */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}
