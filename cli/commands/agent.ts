/**
 * `cutter agent`: parse the flags, load the config (shared/config/agent.ts), start the agent
 * (agent/agent.ts) and drain it on SIGINT/SIGTERM. The agent wires itself; this command only
 * sets the process-wide TLS defaults and the logger.
 */
import type { Command } from 'commander';
import { type AgentConfig, AgentConfigSchema, loadConfig, withDefault } from '../../shared/config.js';
import { durationFlag } from '../../shared/duration.js';
import { CutterError } from '../../shared/errors.js';
import { createLogger, type Logger, logFormat } from '../../shared/logger.js';
import { setDefaultTls } from '../../shared/mqtt.js';
import { lendingFromConfig } from '../../agent/lending/config.js';
import { collectWhileIdle } from '../../agent/idle-gc.js';
import { releaseYoungGeneration } from '../../agent/young-generation.js';
import { clientTlsFlags, fatal, onShutdown, withDaemonOptions } from './daemon-common.js';

/** `withDefault` for the agent's keys. */
const d = (key: keyof AgentConfig, text: string, opts?: Parameters<typeof withDefault>[3]) =>
  withDefault(AgentConfigSchema, key, text, opts);

export function registerAgent(program: Command): void {
  withDaemonOptions(program.command('agent'))
    .description('join the mesh as a node: announce capacity, run tasks')
    .option('--broker <url>', d('broker', 'broker URL', { note: 'env CUTTER_BROKER' }))
    .option('--node-id <id>', 'node id (default: the hostname)')
    .option('--max-memory <size>', 'memory cutter may commit to tasks here, e.g. 12g (default: all)')
    .option('--max-tasks <n>', d('maxTasks', 'concurrent tasks'))
    .option(
      '--token-file <path>',
      'JSON file with this node\'s {"username", "password"} (cutter token create --role agent --node ID --json)',
    )
    .option('--allow-exec', 'run exec tasks (shell jobs): off by default')
    .option('--exec-allowlist <cmds>', 'policy: commands exec tasks may run, comma separated (default any)')
    .option('--allowed-images <patterns>', 'policy: image patterns allowed here, comma separated, * wildcards (default any)')
    .option('--max-task-memory <size>', 'policy: largest container memory limit accepted; containers must set one')
    .option('--default-task-memory <size>', 'policy: memory limit for containers that set none')
    .option('--labels <k=v,…>', 'labels for placement')
    .option(
      '--label <key=value>',
      'a label for placement, matched by cutter run --constraint (repeatable; adds to --labels)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--machine-id <id>', "this machine's id for cutter run --prefer-local (default: a hash of /etc/machine-id)")
    .option('--ollama-url <url>', d('ollamaUrl', 'this node\'s Ollama server, or "off"'))
    .option('--heartbeat <duration>', d('heartbeatMs', 'heartbeat interval, e.g. 500ms, 2s', { format: 'duration' }))
    .option(
      '--keepalive <duration>',
      `MQTT keepalive, whole seconds, e.g. 10s (default ${AgentConfigSchema.shape.keepaliveSec.parse(undefined)}s)`,
    )
    .option(
      '--lost-after <duration>',
      d('lostAfterMs', 'how long this node may be disconnected before its tasks are rescheduled, e.g. 10m', { format: 'duration' }),
    )
    .option('--drain-timeout <duration>', d('drainTimeoutMs', 'on SIGTERM, how long to wait for running tasks', { format: 'duration' }))
    .option(
      '--docker-engine-grace <duration>',
      d('dockerEngineGraceMs', 'how long docker tasks wait for a dead or hung Docker engine to return', { format: 'duration' }),
    )
    .option(
      '--files-allow <dirs>',
      'file transfer: directories cutter cp may read and write, comma separated (default: none, transfer off)',
    )
    .option('--files-deny <dirs>', 'file transfer: directories refused even inside an allowed one (deny wins)')
    .option(
      '--advertise-address <addr>',
      'port forwarding: address the server can reach this node at (unset: forwards to this node are refused)',
    )
    .option(
      '--wake-address <ipv4>',
      "Wake-on-LAN for another node on this LAN (the server asks): send to this address instead of the LAN's broadcast address",
    )
    .option('--wake-port <port>', 'Wake-on-LAN for another node: this UDP port instead of the one the server names')
    .option('--files-max-size <size>', d('filesMaxSize', 'file transfer and image sync: largest file, e.g. 10g', { format: 'size' }))
    .option('--volumes-dir <dir>', 'volumes: directory of this node\'s volumes (default <data dir>/volumes/<node id>; "off": none)')
    .option(
      '--allow-host-path <dirs>',
      'policy: host directories tasks may mount (docker run -v /srv/data:/data), comma separated (default none)',
    )
    .option('--health-file <path>', 'rewrite this file after every heartbeat (for container healthchecks)')
    .option('--lend-policy <file>', 'lending: policy file, YAML or JSON (README "Lending a notebook"); the --lend-* flags override it')
    .option('--lend-ac-only', 'lending: take work only on mains power')
    .option('--lend-idle-minutes <n>', 'lending: only when the owner has been idle N minutes (logind)')
    .option('--lend-max-owner-cpu <pct>', "lending: only while the owner's CPU use (minus cutter's tasks) is at most PCT %")
    .option('--lend-min-free-memory <size>', 'lending: only while this much memory is available, e.g. 2g')
    .option('--lend-window <spec>', 'lending: a time window, e.g. "mon-fri 22:00-07:00" or "sat,sun *" (repeatable)', collectWindow)
    .option('--lend-preempt-after <duration>', 'lending: stop a task suspended this long and place it elsewhere (default 10m)')
    .option('--lend-sample <duration>', "lending: how often the owner's state is sampled (default 5s)")
    .option(
      '--power-supply-dir <dir>',
      'lending: where power supplies are read (default /sys/class/power_supply; env CUTTER_POWER_SUPPLY_DIR)',
    )
    .action(async (flags) => {
      let cfg: AgentConfig;
      try {
        cfg = loadConfig(AgentConfigSchema, 'agent', agentConfigInput(flags), process.env, flags.config);
        lendingFromConfig(cfg); // a wrong policy file is said here, not as a stack trace from the agent
      } catch (err) {
        fatal(err);
      }
      setDefaultTls(cfg);
      let log: Logger;
      try {
        log = createLogger(cfg.logLevel, 1, logFormat(1, flags.logFormat));
      } catch (err) {
        fatal(err);
      }
      const { Agent } = await import('../../agent/agent.js');
      const agent = new Agent(cfg, log);
      onShutdown(log, () => agent.stop('agent stopped'));
      try {
        await agent.start();
      } catch (err) {
        log.fatal({ err }, 'agent failed to start');
        fatal(err);
      }
      // Started: tasks may come, and get the young generation V8 would give them
      // (agent/young-generation.ts). The optimising compiler waits for the agent's first work
      // (agent/start-compiler.ts); the beats' garbage goes every 2 minutes while no task runs
      // (agent/idle-gc.ts).
      collectWhileIdle(() => agent.runningTasks === 0);
      releaseYoungGeneration();
    });
}

/** Commander's collector for the repeatable `--lend-window`. */
function collectWindow(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * `--keepalive` in whole seconds (MQTT's keepalive unit, the config key `keepaliveSec`), read as a duration.
 * @throws CutterError INVALID_ARGUMENT naming the flag when it is not a duration of whole seconds.
 */
export function keepaliveFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = durationFlag('--keepalive', text);
  if (ms % 1000 !== 0)
    throw new CutterError(
      'INVALID_ARGUMENT',
      `--keepalive ${JSON.stringify(text)}: MQTT keepalive is whole seconds, write e.g. 10s (a bare number is milliseconds)`,
    );
  return ms / 1000;
}

/**
 * `--labels a=1,b=2` and each `--label k=v` as one `k=v,…` string for the config (later ones win);
 * undefined when neither is given, so the config file's or env's labels apply.
 */
export function joinLabels(labels: string | undefined, each: string[] | undefined): string | undefined {
  const all = [labels, ...(each ?? [])].filter((v): v is string => Boolean(v));
  return all.length ? all.join(',') : undefined;
}

/**
 * The agent's flags (commander's camel-cased values) as config keys, for `loadConfig`
 * (shared/config/agent.ts); `cutter agent install` checks its flags with the same mapping.
 */
export function agentConfigInput(flags: Record<string, unknown>): Record<string, unknown> {
  return {
    broker: flags.broker,
    nodeId: flags.nodeId,
    maxMemory: flags.maxMemory,
    maxTasks: flags.maxTasks,
    allowExec: flags.allowExec,
    labels: joinLabels(flags.labels as string | undefined, flags.label as string[] | undefined),
    machineId: flags.machineId,
    heartbeatMs: flags.heartbeat === undefined ? undefined : durationFlag('--heartbeat', String(flags.heartbeat)),
    keepaliveSec: keepaliveFlag(flags.keepalive as string | undefined),
    lostAfterMs: flags.lostAfter,
    drainTimeoutMs: flags.drainTimeout,
    dockerEngineGraceMs: flags.dockerEngineGrace,
    tokenFile: flags.tokenFile,
    allowedImages: flags.allowedImages,
    maxTaskMemory: flags.maxTaskMemory,
    defaultTaskMemory: flags.defaultTaskMemory,
    execAllowlist: flags.execAllowlist,
    ollamaUrl: flags.ollamaUrl,
    filesAllow: flags.filesAllow,
    filesDeny: flags.filesDeny,
    filesMaxSize: flags.filesMaxSize,
    advertiseAddress: flags.advertiseAddress,
    wakeAddress: flags.wakeAddress,
    wakePort: flags.wakePort,
    healthFile: flags.healthFile,
    volumesDir: flags.volumesDir,
    allowHostPath: flags.allowHostPath,
    lendPolicy: flags.lendPolicy,
    lendAcOnly: flags.lendAcOnly,
    lendIdleMinutes: flags.lendIdleMinutes,
    lendMaxOwnerCpu: flags.lendMaxOwnerCpu,
    lendMinFreeMemory: flags.lendMinFreeMemory,
    lendWindows: (flags.lendWindow as string[] | undefined)?.join(';'),
    lendPreemptAfterMs: flags.lendPreemptAfter,
    lendSampleMs: flags.lendSample,
    powerSupplyDir: flags.powerSupplyDir,
    prefix: flags.prefix,
    logLevel: flags.logLevel,
    ...clientTlsFlags(flags),
  };
}
