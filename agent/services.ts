/** The services an agent hosts by default, built from its config (wiring only). */
import Docker from 'dockerode';
import type { AgentConfig } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { topics } from '../shared/topics.js';
import { DockerExecutor } from './executors/docker.js';
import type { Executor } from './executors/executor.js';
import { DockerImageStore } from './files/images.js';
import { FileService } from './files/service.js';
import { OutputCreditService } from './output-credit.js';
import { imageViolation } from './policy.js';
import { PortAnnouncer } from './ports.js';
import type { AgentService } from './service.js';
import { StdinService } from './stdin.js';
import { volumesOf } from './volumes/config.js';
import { ioOf } from './io/requests.js';
import { VolumePuller } from './volumes/pull.js';

/** Port announcements, file transfer and image sync (the Docker client of the docker executor, when there is one), task stdin, reader credit. */
export function defaultServices(config: AgentConfig, log: Logger, executors: Executor[]): AgentService[] {
  const docker = executors.find((e): e is DockerExecutor => e instanceof DockerExecutor)?.docker ?? new Docker();
  // Node-to-node copies into this node's volumes (`vol.pull`), answered through the volume store.
  const volumes = volumesOf(config);
  const puller =
    volumes &&
    new VolumePuller({
      node: config.nodeId,
      t: topics(config.prefix),
      log: log.child({ node: config.nodeId, component: 'pull' }),
      store: volumes,
    });
  if (volumes) volumes.puller = puller;
  return [
    ...(puller ? [puller] : []),
    new PortAnnouncer({
      node: config.nodeId,
      t: topics(config.prefix),
      log: log.child({ node: config.nodeId, component: 'ports' }),
      address: config.advertiseAddress,
    }),
    new FileService({
      node: config.nodeId,
      t: topics(config.prefix),
      log: log.child({ node: config.nodeId }),
      allow: config.filesAllow,
      deny: config.filesDeny,
      maxBytes: config.filesMaxSize,
      images: new DockerImageStore(docker),
      imagePolicy: (image) => imageViolation(image, config.allowedImages),
      volumes: volumesOf(config),
      io: ioOf(config),
    }),
    new StdinService({ node: config.nodeId, t: topics(config.prefix), log: log.child({ node: config.nodeId, component: 'stdin' }) }),
    new OutputCreditService({
      node: config.nodeId,
      t: topics(config.prefix),
      log: log.child({ node: config.nodeId, component: 'credit' }),
    }),
  ];
}
