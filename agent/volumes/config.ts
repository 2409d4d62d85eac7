/** The one VolumeStore of an agent, from its config (shared by the file service, the heartbeat and task admission). */
import { join } from 'node:path';
import type { AgentConfig } from '../../shared/config.js';
import { defaultDataDir } from '../../shared/config/common.js';
import { VolumeStore } from './store.js';

/** The config keys volumes read (task admission is handed only part of the config in tests). */
export type VolumeConfig = Pick<AgentConfig, 'nodeId'> & Partial<Pick<AgentConfig, 'volumesDir' | 'allowHostPath'>>;

const stores = new WeakMap<VolumeConfig, VolumeStore | null>();

/** @returns the node's volumes (`config.volumesDir`, default `<data dir>/volumes/<node id>`), or undefined when `off`. */
export function volumesOf(config: VolumeConfig): VolumeStore | undefined {
  let store = stores.get(config);
  if (store === undefined) {
    const dir = config.volumesDir ?? join(defaultDataDir(), 'volumes', config.nodeId);
    store = dir === 'off' ? null : new VolumeStore(dir, config.nodeId);
    stores.set(config, store);
  }
  return store ?? undefined;
}
