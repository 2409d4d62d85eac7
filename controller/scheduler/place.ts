/**
 * `place(request, snapshot)`: the scheduler. A pure function — same snapshot, same answer — with
 * Nomad's shape (feasibility checkers, then a ranker):
 *   1. an explicit node (`--node`) is the only candidate;
 *   2. every candidate is checked (feasibility.ts); rejected ones keep their reason, as data (a Rejection);
 *   3. the feasible ones are ranked by the headroom they would have left: most for `spread`
 *      (default), least for `binpack`; ties go to the lexically first node id.
 *      On a mesh of WALK_FROM_NODES nodes or more, for a task that names no node, asks for no
 *      model and has no local preference, steps 2 and 3 are one walk in headroom order
 *      (headroom.ts) that stops at the first node that can take it: the same node, with only the
 *      nodes ranked above it checked (and named as passed over).
 *      With prefer-local (prefer-local.ts) only the submitter's own node is ranked while it keeps
 *      its headroom, else only the others (the local one when none other is feasible).
 * Ollama tasks (ollama.ts) first pass the placement file's rule for their model (unless a node is
 * named), then rank by where the model stands (loaded > on disk > loading > must pull), then by fewest
 * requests in flight (the heartbeat's or the controller's own count, whichever is more), then by headroom as above.
 */
import { describeRule, formatRejections } from '../../shared/reasons.js';
import type { Rejection } from '../../shared/schemas/index.js';
import { compareIds } from '../../shared/topics.js';
import { formatBytes } from '../../shared/units.js';
import { freeMemory, rejectReason } from './feasibility.js';
import { headroomOrder, headroomWalk } from './headroom.js';
import { preferLocal, preferLocalApplies } from './prefer-local.js';
import { fitGpus } from './gpus.js';
import { inFlight, modelSize, modelTier, ruleData, ruleFor, TIER_NAMES, type ModelTier } from './ollama.js';
import type { ClusterSnapshot, NodeSnapshot, Placement, PlacementRequest } from './snapshot.js';

export function place(req: PlacementRequest, snapshot: ClusterSnapshot): Placement {
  const wanted = req.requirements.node;
  let candidates = wanted ? snapshot.nodes.filter((n) => n.node === wanted) : [...snapshot.nodes];
  if (wanted && candidates.length === 0) {
    const known = snapshot.nodes.map((n) => n.node).sort(compareIds);
    return {
      ok: false,
      rejections: [{ node: wanted, code: 'unknown-node' }],
      message: `node "${wanted}" is not known to the controller${known.length ? ` (known: ${known.join(', ')})` : ' (no nodes have joined)'}`,
    };
  }
  if (candidates.length === 0) {
    return { ok: false, rejections: [], message: 'no nodes have joined the mesh: start `cutter agent` on a machine' };
  }

  // The common case on a large mesh — any node, no model, no local preference — walks the nodes
  // from the best headroom and stops at the first that can take the task: with 1,000 nodes,
  // checking every one for every task was the controller's largest cost. When none can, the full
  // scan below says why. A smaller mesh is scanned whole, so the reason names every rejected node.
  if (!wanted && !req.ollama && snapshot.nodes.length >= WALK_FROM_NODES && !preferLocalApplies(req, snapshot)) {
    const first = firstFit(req, snapshot);
    if (first) return first;
  }

  const rejections: Rejection[] = [];
  const size = req.ollama ? modelSize(snapshot.nodes, req.ollama.model) : null;
  const rule = req.ollama && !wanted ? ruleFor(snapshot.modelRules, req.ollama.model, size) : null;
  if (rule) {
    const allowed = new Set(rule.rule.nodes);
    for (const n of candidates)
      if (!allowed.has(n.node))
        rejections.push({ node: n.node, code: 'placement-rule', model: req.ollama!.model, rule: ruleData(rule.rule, rule.index) });
    candidates = candidates.filter((n) => allowed.has(n.node));
  }
  const feasible: { node: string; freeAfter: number; tier: ModelTier; inFlight: number }[] = [];
  for (const n of candidates) {
    let why = rejectReason(n, req, snapshot.now);
    let tier: ModelTier = 0;
    if (!why && req.ollama) {
      const t = modelTier(n, req.ollama, size);
      if ('rejection' in t) why = t.rejection;
      else tier = t.tier;
    }
    if (why) rejections.push({ node: n.node, ...why });
    else feasible.push({ node: n.node, freeAfter: freeMemory(n) - req.requirements.memory, tier, inFlight: req.ollama ? inFlight(n) : 0 });
  }
  rejections.sort((a, b) => compareIds(a.node, b.node));

  if (feasible.length === 0) {
    const need = req.requirements.memory ? ` needing ${formatBytes(req.requirements.memory)}` : '';
    const what = req.ollama ? `ollama ${req.ollama.op} of ${req.ollama.model}` : `${req.kind} task`;
    return { ok: false, rejections, message: `no node can take this ${what}${need} now` };
  }
  const sign = snapshot.policy === 'binpack' ? 1 : -1;
  // The first by this order, in one pass: sorting every feasible node for each placement was most
  // of the scheduler's time with 1,000 nodes (all tied on headroom, so every comparison went on to the ids).
  const rank = (a: (typeof feasible)[number], b: (typeof feasible)[number]) =>
    a.tier - b.tier || a.inFlight - b.inFlight || sign * (a.freeAfter - b.freeAfter) || compareIds(a.node, b.node);
  const local = preferLocal(feasible, req, snapshot);
  const best = local.pool.reduce((b, f) => (rank(f, b) < 0 ? f : b));
  let how = wanted
    ? 'requested with --node'
    : `${snapshot.policy === 'binpack' ? 'least' : 'most'} headroom of ${feasible.length} feasible node${feasible.length > 1 ? 's' : ''}, ${snapshot.policy}`;
  if (local.note) how = `${local.note}; ${how}`;
  if (req.ollama && req.ollama.op !== 'pull') {
    const same = feasible.filter((f) => f.tier === best.tier).length;
    how = `model ${TIER_NAMES[best.tier]}${same > 1 ? ` (1 of ${same} such nodes, ${best.inFlight} request${best.inFlight === 1 ? '' : 's'} in flight)` : ''}${rule ? `, ${describeRule(ruleData(rule.rule, rule.index))}` : ''}; ${how}`;
  }
  const chosen = candidates.find((n) => n.node === best.node)!;
  return placed(chosen, req, best.freeAfter, how, rejections.length ? `; rejected ${formatRejections(rejections)}` : '');
}

/**
 * The scheduler's yes: node `n` for `req`, with `freeAfter` bytes left, the GPUs chosen for it
 * there when it asks for some, and a reason made of why (`how`), those GPUs and `tail`.
 */
function placed(n: NodeSnapshot, req: PlacementRequest, freeAfter: number, how: string, tail: string): Placement {
  const fit = req.requirements.gpus ? fitGpus(n, req) : undefined;
  const gpus = fit && 'devices' in fit ? fit.devices : undefined;
  return {
    ok: true,
    node: n.node,
    freeAfter,
    reason: `${n.node}: ${formatBytes(freeAfter)} left for tasks after placement (${how})${gpus ? `; GPUs ${gpus.join(', ')}` : ''}${tail}`,
    ...(gpus ? { gpus } : {}),
  };
}

/**
 * From this many nodes on, a task that names no node, model or local preference is placed by the
 * walk in headroom order (`firstFit`); below it every node is checked (a few µs), and the reason
 * names every rejected node and counts the feasible ones.
 */
export const WALK_FROM_NODES = 64;

/** Most passed-over nodes a placement reason names; the rest are counted. */
const PASSED_SHOWN = 8;

/**
 * The best node by headroom that can take the task, met walking the nodes in headroom order
 * (headroom.ts): the same node a full scan ranks first, found after checking only the nodes that
 * rank above it. Its reason names those nodes as passed over, with why. Null when no node can.
 */
function firstFit(req: PlacementRequest, snapshot: ClusterSnapshot): Placement | null {
  const ranked = snapshot.ranked ?? headroomOrder(snapshot.nodes);
  const need = req.requirements.memory;
  const passed: Rejection[] = [];
  for (const n of headroomWalk(ranked, snapshot.policy, need)) {
    const why = rejectReason(n, req, snapshot.now);
    if (why) {
      passed.push({ node: n.node, ...why });
      continue;
    }
    const how = `${snapshot.policy === 'binpack' ? 'least' : 'most'} headroom, ${snapshot.policy}`;
    const more = passed.length > PASSED_SHOWN ? `; and ${passed.length - PASSED_SHOWN} more` : '';
    const over = passed.length ? `; passed over ${formatRejections(passed.slice(0, PASSED_SHOWN))}${more}` : '';
    return placed(n, req, freeMemory(n) - need, how, over);
  }
  return null;
}
