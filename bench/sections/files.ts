/** The file transfer benchmark (bench/file-transfer.ts) as one result row. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../scripts/procs.js';
import { runFileTransferBench } from '../file-transfer.js';
import { type Results, verdict } from '../results.js';

/** Runs bench/file-transfer.ts (which writes bench/file-transfer-results.*) and reports `cutter cp` against a plain TCP copy. */
export async function fileTransfer(results: Results): Promise<void> {
  await runFileTransferBench();
  const r = JSON.parse(readFileSync(join(ROOT, 'bench', 'file-transfer-results.json'), 'utf8')) as {
    fileBytes: number;
    tcp: { MBps: number };
    put: { MBps: number; ratioToTcp: number };
    get: { MBps: number; ratioToTcp: number };
  };
  results.json.fileTransfer = r;
  results.rows.push({
    name: `file transfer: \`cutter cp\` of ${Math.round(r.fileBytes / 1e6)} MB over loopback MQTT, SHA-256 checked ([details](file-transfer-results.md))`,
    baseline: `plain TCP copy: ${r.tcp.MBps.toFixed(0)} MB/s`,
    measured: `to the node ${r.put.MBps.toFixed(0)} MB/s, from the node ${r.get.MBps.toFixed(0)} MB/s`,
    ratio: `${r.put.ratioToTcp.toFixed(2)}×, ${r.get.ratioToTcp.toFixed(2)}× of TCP`,
    target: '≥ 0.95× both ways',
    met: verdict(r.put.ratioToTcp >= 0.95 && r.get.ratioToTcp >= 0.95),
  });
}
