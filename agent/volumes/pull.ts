/**
 * Node-to-node copies (`cutter cp -r A:VOL/DIR B:VOL/DIR`, shared/schemas/volumes.ts `vol.pull`):
 * this node's agent fetches a directory of another node's volume straight from that node's agent,
 * as a client of its file service (client id `cutter-agent-<this node>`, which the broker lets only
 * this agent use), with the same manifest, windowed and SHA-256 checked transfer `cutter cp -r`
 * uses (shared/transfer/). The other node serves only what the submitter granted (`vol.grant`). Only
 * files this node lacks or has different move; each lands through VolumeStore.forWrite (confined
 * to the volume). The client's machine carries no file byte: it only asks and waits for the answer.
 */
import { encode } from '../../shared/codec.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MessageRouter, MqttClient } from '../../shared/mqtt.js';
import type { FileIn, FileOut } from '../../shared/schemas/files.js';
import type { ManifestEntry } from '../../shared/schemas/volumes.js';
import type { Topics } from '../../shared/topics.js';
import { normaliseVolumePath } from '../../shared/volumes.js';
import { getFile } from '../../shared/transfer/get.js';
import { FileLink } from '../../shared/transfer/link.js';
import { newXfer } from '../../shared/transfer/transfer.js';
import type { AgentService } from '../service.js';
import type { VolumeStore } from './store.js';

type Pull = Extract<FileIn, { type: 'vol.pull' }>;
type Pulled = Extract<FileOut, { type: 'vol.pulled' }>;

/** Most copies kept for answering a `vol.pull` asked again. */
const KEEP = 100;

export interface PullerOptions {
  node: string;
  t: Topics;
  log: Logger;
  store: VolumeStore;
}

/** Runs `vol.pull` requests, one copy at a time per request id, and answers each when done. */
export class VolumePuller implements AgentService {
  private client?: MqttClient;
  private readonly runs = new Map<string, Omit<Pulled, 'v'> | { type: 'error'; xfer: string; code: string; message: string }>();

  constructor(private readonly opts: PullerOptions) {}

  attach(client: MqttClient, _router: MessageRouter): void {
    this.client = client;
  }

  private reply(client: string, body: object): void {
    void this.client
      ?.publishAsync(this.opts.t.filesOut(this.opts.node, client), encode({ v: 1, ...body }), { qos: 1 })
      .catch((err) => this.opts.log.warn({ err }, 'pull reply failed'));
  }

  /** Starts the copy (or reports the one running or done under this id). @returns the answer for now. */
  pull(msg: Pull, client: string): Omit<Pulled, 'v'> {
    const known = this.runs.get(msg.xfer);
    if (known) {
      if (known.type === 'error') this.reply(client, known);
      else return known;
      return { type: 'vol.pulled', xfer: msg.xfer, done: false };
    }
    const running: Omit<Pulled, 'v'> = { type: 'vol.pulled', xfer: msg.xfer, done: false };
    this.runs.set(msg.xfer, running);
    if (this.runs.size > KEEP) this.runs.delete(this.runs.keys().next().value!);
    void this.copy(msg).then(
      (done) => {
        this.runs.set(msg.xfer, done);
        this.reply(client, done);
      },
      (err) => {
        const failed = {
          type: 'error' as const,
          xfer: msg.xfer,
          code: 'IO_ERROR',
          message: `copy from node ${msg.from.node}: ${errorMessage(err)}`,
        };
        this.opts.log.warn({ err, from: msg.from, volume: msg.volume }, 'node-to-node copy failed');
        this.runs.set(msg.xfer, failed);
        this.reply(client, failed);
      },
    );
    return running;
  }

  private async copy(msg: Pull): Promise<Omit<Pulled, 'v'>> {
    const started = Date.now();
    const { store, log } = this.opts;
    const link = new FileLink(this.client!, this.opts.t, msg.from.node, `cutter-agent-${this.opts.node}`);
    await link.open();
    try {
      const ask = <T extends FileOut['type']>(body: Parameters<FileLink['send']>[0], type: T) =>
        link.ask(body, (m): m is Extract<FileOut, { type: T }> => m.type === type, 10_000, 120_000);
      const remote: ManifestEntry[] = [];
      for (let offset: number | null = 0; offset !== null; ) {
        const p: Extract<FileOut, { type: 'vol.files' }> = await ask(
          { type: 'vol.manifest', xfer: newXfer(), volume: msg.from.volume, path: msg.from.path, offset },
          'vol.files',
        );
        for (const f of p.files) {
          if (normaliseVolumePath(f.path) !== f.path || !f.path)
            throw new Error(`node ${msg.from.node} listed a path that leaves the directory: ${f.path}`);
          remote.push(f);
        }
        offset = p.next !== null && p.next > offset && p.files.length > 0 ? p.next : null;
      }
      const under = (base: string, rel: string) => (base ? `${base}/${rel}` : rel);
      const here = remote.map((f) => ({ ...f, path: under(msg.path, f.path) }));
      const { need } = await store.diff(msg.volume, here);
      let bytesSent = 0;
      let wireBytes = 0;
      for (const k of need) {
        const dest = await store.forWrite(msg.volume, here[k].path);
        const r = await getFile(link, under(msg.from.path, remote[k].path), dest, { volume: msg.from.volume });
        if (r.sha256 !== remote[k].sha256) throw new Error(`${remote[k].path} changed on node ${msg.from.node} while it was copied`);
        bytesSent += remote[k].size;
        wireBytes += r.wireBytes;
      }
      const bytes = remote.reduce((n, f) => n + f.size, 0);
      log.info(
        { from: msg.from, volume: msg.volume, path: msg.path, files: remote.length, sent: need.length, bytesSent },
        'node-to-node copy done',
      );
      return {
        type: 'vol.pulled',
        xfer: msg.xfer,
        done: true,
        files: remote.length,
        filesSent: need.length,
        bytes,
        bytesSent,
        wireBytes,
        ms: Date.now() - started,
      };
    } finally {
      await link.close();
    }
  }
}
