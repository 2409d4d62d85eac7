/**
 * Configuration: command-line flags > `CUTTER_*` environment variables > config file > defaults,
 * validated with zod. A bad value is reported with its key and where it came from, e.g.
 * `invalid config: maxMemory = "lots" (from env CUTTER_MAX_MEMORY): "lots" is not a size …`.
 *
 * The config file is JSON (`--config PATH`, `CUTTER_CONFIG`, or `~/.config/cutter/config.json`
 * when present): top-level keys apply to every command, and a section named after the command
 * (`server`, `agent`, `cli`) overrides them. Keys are camelCase; env names are `CUTTER_` + the key
 * in UPPER_SNAKE (`maxMemory` → `CUTTER_MAX_MEMORY`).
 */
export * from './config/admin-token.js';
export * from './config/agent.js';
export * from './config/common.js';
export * from './config/help.js';
export * from './config/load.js';
export * from './config/server.js';
