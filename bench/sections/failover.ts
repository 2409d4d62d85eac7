/** The failure detection benchmark (bench/failover.ts) as result rows: signal → offline, signal → rescheduled. */
import { FAILOVER_CONFIG, measureFailover } from '../failover.js';
import { median, quantile } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { FAILOVER_TRIALS } from '../settings.js';

/** An agent SIGKILLed and one SIGSTOPped, FAILOVER_TRIALS times each: until the node is offline, until its task runs elsewhere. */
export async function failover(results: Results): Promise<void> {
  for (const f of await measureFailover(FAILOVER_TRIALS)) {
    results.json[`failover${f.mode}`] = f;
    const how = f.mode === 'SIGKILL' ? 'agent SIGKILLed (last will)' : 'agent SIGSTOPped (silence only)';
    const cfg = `heartbeat ${FAILOVER_CONFIG.heartbeatMs} ms, keepalive ${FAILOVER_CONFIG.keepaliveSec} s, lost-after 0`;
    results.rows.push({
      name: `${how}: signal → node offline, ${FAILOVER_TRIALS} trials (${cfg})`,
      baseline: 'Nomad: 10 s+ heartbeat grace',
      measured: `p50 ${median(f.offlineMs)} ms, p95 ${quantile(f.offlineMs, 0.95)} ms`,
      ratio: `${(median(f.offlineMs) / 10_000).toFixed(2)}× of 10 s`,
      target: '< 3 s',
      met: verdict(quantile(f.offlineMs, 0.95) < 3_000),
    });
    results.rows.push({
      name: `${how}: signal → task running on another node`,
      baseline: '-',
      measured: `p50 ${median(f.rescheduledMs)} ms, p95 ${quantile(f.rescheduledMs, 0.95)} ms`,
      ratio: `${(quantile(f.rescheduledMs, 0.95) / 3_000).toFixed(2)}× of 3 s`,
      target: '< 3 s',
      met: verdict(quantile(f.rescheduledMs, 0.95) < 3_000),
    });
  }
}
