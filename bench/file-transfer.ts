/**
 * File transfer throughput over loopback MQTT, as a ratio of a plain TCP copy of the same file in
 * the same run (`node dist/bench/file-transfer.js`; writes bench/file-transfer-results.md and
 * bench/file-transfer-results.json).
 *
 * - MQTT: `cutter cp` to a node and back through a real `cutter server` (embedded Aedes broker)
 *   and a real `cutter agent`, both on loopback; throughput from the transfer's own `ms` (from the
 *   first request to the far end's SHA-256-checked `done`; the sender's up-front hash excluded) and
 *   from the whole command's wall time.
 * - TCP baseline: the same file streamed through a Node `net` socket on loopback into a file (no
 *   framing, no acks, no hashing) — what `nc host port < file` does.
 * Runs interleave (MQTT put, MQTT get, TCP), median of `BENCH_FILE_RUNS` (default 3) each, file of
 * `BENCH_FILE_MB` MB (default 200).
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { CUTTER, ROOT, freePort, startDaemon } from '../scripts/procs.js';
import { TRANSFER_CHUNK_BYTES, TRANSFER_WINDOW_BYTES } from '../shared/transfer/pump.js';

const MB = 1_000_000;
const SIZE = Number(process.env.BENCH_FILE_MB ?? 200) * MB;
const RUNS = Number(process.env.BENCH_FILE_RUNS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Copies `src` to `dst` over a loopback TCP socket. @returns ms. */
async function tcpCopy(src: string, dst: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const t0 = process.hrtime.bigint();
  const received = new Promise<void>((resolve, reject) => {
    server.once('connection', (sock) => {
      const out = createWriteStream(dst);
      sock.pipe(out);
      out.on('finish', resolve);
      out.on('error', reject);
    });
  });
  const sock = connect(port, '127.0.0.1');
  createReadStream(src).pipe(sock);
  await received;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  server.close();
  return ms;
}

/** Runs `cutter cp … --json`. @returns the transfer's own ms and the command's wall ms. */
function cutterCp(broker: string, env: NodeJS.ProcessEnv, from: string, to: string): { ms: number; wallMs: number; resumed: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CUTTER, 'cp', from, to, '--json', '--broker', broker], { encoding: 'utf8', env });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`cutter cp ${from} ${to} failed: ${r.stdout}${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ms: number; bytes: number; resumedFrom: number[] };
  if (out.bytes !== SIZE) throw new Error(`cutter cp moved ${out.bytes} bytes, expected ${SIZE}`);
  return { ms: out.ms, wallMs, resumed: out.resumedFrom.length };
}

/**
 * Runs the benchmark, writes bench/file-transfer-results.{md,json} and returns the markdown.
 * (What `npm run bench:files` runs; bench/run.ts can call it too.)
 */
export async function runFileTransferBench(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cutter-bench-files-'));
  const allowed = join(dir, 'node');
  const local = join(dir, 'local');
  mkdirSync(allowed);
  mkdirSync(local);
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_DATA_HOME: join(dir, 'xdg'), XDG_CONFIG_HOME: join(dir, 'xdgc') };
  for (const k of Object.keys(env)) if (k.startsWith('CUTTER_')) delete env[k];
  const src = join(local, 'src.bin');
  spawnSync('sh', ['-c', `head -c ${SIZE} /dev/urandom > ${src}`]);
  const port = await freePort();
  const broker = `mqtt://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  try {
    children.push(
      await startDaemon(
        ['server', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, 'data'), '--insecure'],
        'broker listening',
        env,
      ),
    );
    children.push(await startDaemon(['agent', '--broker', broker, '--node-id', 'bench', '--files-allow', allowed], 'agent started', env));
    const put: number[] = [];
    const get: number[] = [];
    const putWall: number[] = [];
    const getWall: number[] = [];
    const tcp: number[] = [];
    let resumes = 0;
    for (let i = 0; i < RUNS; i++) {
      const p = cutterCp(broker, env, src, `bench:${join(allowed, `f${i}.bin`)}`);
      put.push(p.ms);
      putWall.push(p.wallMs);
      const g = cutterCp(broker, env, `bench:${join(allowed, `f${i}.bin`)}`, join(local, `back${i}.bin`));
      get.push(g.ms);
      getWall.push(g.wallMs);
      resumes += p.resumed + g.resumed;
      tcp.push(await tcpCopy(src, join(local, `tcp${i}.bin`)));
      for (const f of [join(allowed, `f${i}.bin`), join(local, `back${i}.bin`), join(local, `tcp${i}.bin`)]) rmSync(f, { force: true });
    }
    const rate = (ms: number) => SIZE / MB / (ms / 1000);
    const tcpRate = rate(median(tcp));
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
      fileBytes: SIZE,
      runs: RUNS,
      chunkBytes: TRANSFER_CHUNK_BYTES,
      windowChunks: TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES,
      tcp: { medianMs: median(tcp), MBps: tcpRate },
      put: {
        medianMs: median(put),
        MBps: rate(median(put)),
        ratioToTcp: rate(median(put)) / tcpRate,
        wallMedianMs: median(putWall),
        wallMBps: rate(median(putWall)),
      },
      get: {
        medianMs: median(get),
        MBps: rate(median(get)),
        ratioToTcp: rate(median(get)) / tcpRate,
        wallMedianMs: median(getWall),
        wallMBps: rate(median(getWall)),
      },
      resumes,
    };
    const f1 = (x: number) => x.toFixed(1);
    const f2 = (x: number) => x.toFixed(2);
    const md = [
      '# File transfer benchmark',
      '',
      `Generated by \`bench/file-transfer.ts\` on ${result.date}: ${result.machine.cpus} × ${result.machine.cpu}, Node ${result.machine.node}. Everything on loopback, on a machine shared with other work (figures vary from run to run; compare the ratios).`,
      '',
      `A ${f1(SIZE / MB)} MB file of random bytes, median of ${RUNS} runs each, interleaved. \`cutter cp\` goes CLI → embedded Aedes broker → agent (and back), in ${result.chunkBytes / 1024} KiB chunks with ${result.windowChunks} chunks in flight, every chunk acknowledged, the SHA-256 of the whole file checked at the far end. The baseline is a plain loopback TCP copy of the same file (Node \`net\` socket into a file, what \`nc\` does).`,
      '',
      '| transfer | median | throughput | vs plain TCP | whole command (wall) |',
      '| --- | --- | --- | --- | --- |',
      `| plain TCP copy | ${f1(result.tcp.medianMs)} ms | ${f1(result.tcp.MBps)} MB/s | 1.00× | — |`,
      `| \`cutter cp\` local → node | ${f1(result.put.medianMs)} ms | ${f1(result.put.MBps)} MB/s | **${f2(result.put.ratioToTcp)}×** | ${f1(result.put.wallMedianMs)} ms (${f1(result.put.wallMBps)} MB/s) |`,
      `| \`cutter cp\` node → local | ${f1(result.get.medianMs)} ms | ${f1(result.get.MBps)} MB/s | **${f2(result.get.ratioToTcp)}×** | ${f1(result.get.wallMedianMs)} ms (${f1(result.get.wallMBps)} MB/s) |`,
      '',
      "The transfer time runs from the first request to the far end's SHA-256-checked answer; the wall time adds process start, connecting, and hashing the file before sending (put). Resumes during the runs: " +
        resumes +
        '.',
      '',
    ].join('\n');
    writeFileSync(join(ROOT, 'bench', 'file-transfer-results.md'), md);
    writeFileSync(join(ROOT, 'bench', 'file-transfer-results.json'), `${JSON.stringify(result, null, 2)}\n`);
    return md;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.stdout.write(await runFileTransferBench());
