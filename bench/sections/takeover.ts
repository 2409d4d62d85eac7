/** The leader takeover benchmark (bench/takeover.ts) as result rows: SIGKILL → new leader online, SIGKILL → requests answered. */
import { postgresBinDir } from '../../scripts/postgres.js';
import { quantile } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { TAKEOVER_TRIALS } from '../settings.js';
import { measureTakeover, TAKEOVER_LEASE_MS, takeoverSummary } from '../takeover.js';

/** Two servers on one PostgreSQL and one Mosquitto; the leader SIGKILLed, then SIGSTOPped, TAKEOVER_TRIALS times each. */
export async function takeover(results: Results): Promise<void> {
  if (!postgresBinDir()) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)');
  for (const mode of ['SIGKILL', 'SIGSTOP'] as const) {
    const r = await measureTakeover(TAKEOVER_TRIALS, mode);
    results.json[`takeover${mode}`] = r;
    const how = `leader ${mode === 'SIGKILL' ? 'SIGKILLed' : 'SIGSTOPped (frozen: its lease must run out)'} (PostgreSQL state, Mosquitto, lease ${TAKEOVER_LEASE_MS} ms), ${r.trials} trials`;
    results.rows.push({
      name: `${how}: kill → standby's controller online`,
      baseline: 'Nomad: Raft election, 1 s+ heartbeat timeout',
      measured: takeoverSummary(r.onlineMs),
      ratio: `${(quantile(r.onlineMs, 0.95) / 5_000).toFixed(2)}× of 5 s`,
      target: '< 5 s',
      met: verdict(quantile(r.onlineMs, 0.95) < 5_000),
    });
    results.rows.push({
      name: `${how}: kill → a client's request answered again`,
      baseline: '-',
      measured: takeoverSummary(r.answeredMs),
      ratio: `${(quantile(r.answeredMs, 0.95) / 5_000).toFixed(2)}× of 5 s`,
      target: '< 5 s',
      met: verdict(quantile(r.answeredMs, 0.95) < 5_000),
    });
  }
}
