/** The executors an agent runs by default, built from its config (wiring only). */
import type { AgentConfig } from '../../shared/config.js';
import { DockerExecutor } from './docker.js';
import { ExecExecutor } from './exec.js';
import type { Executor } from './executor.js';
import { OllamaExecutor } from './ollama.js';

/**
 * docker (with the node's image and memory rules), exec (turned off unless `allowExec`, limited
 * to `execAllowlist`) and, when `ollamaUrl` is set, ollama; in the order the node offers them.
 */
export function defaultExecutors(config: AgentConfig): Executor[] {
  return [
    new DockerExecutor(
      undefined,
      { allowedImages: config.allowedImages, maxTaskMemory: config.maxTaskMemory, defaultTaskMemory: config.defaultTaskMemory },
      { engineGraceMs: config.dockerEngineGraceMs },
    ),
    new ExecExecutor({ enabled: config.allowExec, allowlist: config.execAllowlist }),
    ...(config.ollamaUrl ? [new OllamaExecutor(config.ollamaUrl)] : []),
  ];
}
