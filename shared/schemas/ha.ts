/**
 * Payloads of the Home Assistant extension (controller/extensions/ha):
 *
 * - the device-based discovery config on `<haPrefix>/device/<id>/config` (retained), in the shape
 *   Home Assistant documents at https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload
 *   ("Device discovery payload": `dev` and `o` mandatory at the root, entities under `cmps`, each with
 *   `p` (platform) and `unique_id`; abbreviations from "Supported abbreviations");
 * - the node state JSON cutter publishes for HA's value templates (retained).
 *
 * The schemas describe what cutter publishes; Home Assistant itself ignores unknown keys.
 */
import { z } from 'zod';

/** HA ids (discovery object ids, unique ids): HA's discovery topic regex allows only these. */
export const HA_ID_RE = /^[a-zA-Z0-9_-]+$/;
const HaId = z.string().regex(HA_ID_RE).max(200);

/** One availability topic; `online`/`offline` are HA's default payloads. */
export const HaAvailabilitySchema = z.object({
  t: z.string().min(1),
  pl_avail: z.string().optional(),
  pl_not_avail: z.string().optional(),
});

/** One entity ("component") of a device discovery payload. */
export const HaComponentSchema = z.object({
  /** Platform: `sensor`, `binary_sensor`, `switch`, … */
  p: z.enum(['sensor', 'binary_sensor', 'switch', 'button', 'select']),
  uniq_id: HaId,
  name: z.string().min(1).max(100),
  /** The suggested entity id with its domain, e.g. `sensor.cutter_gpu_box_memory_available` (replaced `object_id` in HA 2025.10, core PR #151775). */
  default_entity_id: z.string().regex(/^[a-z_]+\.[a-z0-9_]+$/),
  stat_t: z.string().min(1).optional(),
  val_tpl: z.string().optional(),
  command_topic: z.string().min(1).optional(),
  dev_cla: z.string().optional(),
  unit_of_meas: z.string().optional(),
  stat_cla: z.enum(['measurement', 'total', 'total_increasing']).optional(),
  sug_dsp_prc: z.number().int().min(0).max(6).optional(),
  ent_cat: z.enum(['config', 'diagnostic']).optional(),
  ic: z.string().optional(),
  pl_on: z.string().optional(),
  pl_off: z.string().optional(),
  avty: z.array(HaAvailabilitySchema).optional(),
  avty_mode: z.enum(['all', 'any', 'latest']).optional(),
  json_attr_t: z.string().optional(),
  json_attr_tpl: z.string().optional(),
  /** A `select`'s choices (HA MQTT select: `options`, required there). */
  options: z.array(z.string().max(64)).max(16).optional(),
});

/** The device discovery payload cutter publishes for one node. */
export const HaDeviceConfigSchema = z.object({
  dev: z.object({
    ids: z.array(HaId).min(1),
    name: z.string().min(1),
    mf: z.string(),
    mdl: z.string(),
    sw: z.string().optional(),
    hw: z.string().optional(),
  }),
  o: z.object({ name: z.string().min(1), sw: z.string().optional(), url: z.string().optional() }),
  qos: z.union([z.literal(0), z.literal(1)]),
  cmps: z.record(HaId, HaComponentSchema),
});

/** Retained state of one node, read by the entities' value templates. Memory in bytes and in GiB (HA's `data_size` unit). */
export const HaNodeStateSchema = z.object({
  state: z.enum(['online', 'draining', 'offline']),
  drained: z.boolean(),
  memory_available_bytes: z.number().int().nonnegative().nullable(),
  memory_total_bytes: z.number().int().nonnegative().nullable(),
  memory_available_gib: z.number().nonnegative().nullable(),
  memory_total_gib: z.number().nonnegative().nullable(),
  cpu_load_percent: z.number().min(0).max(100).nullable(),
  cpu_cores: z.number().int().nullable(),
  running_tasks: z.number().int().nonnegative(),
  /** Free memory of each GPU, GiB (null when its driver does not say). */
  gpu_memory_free_gib: z.array(z.number().nonnegative().nullable()),
  ollama_models_loaded: z.number().int().nonnegative(),
  ollama_loaded: z.array(z.string()),
  agent_version: z.string(),
  /** When the controller last heard from the node (ISO 8601, the controller's clock). */
  last_heartbeat: z.string(),
  /** Lending (issue 17): `lending`, `suspended: on battery`, `closed: outside 22:00-07:00`; absent for nodes without a lending policy. */
  lending: z.string().max(400).optional(),
  /** The lending switch: the policy is on. */
  lending_enabled: z.boolean().optional(),
  /** The lending mode select: `auto` or `always`. */
  lending_mode: z.string().max(16).optional(),
});

export type HaComponent = z.infer<typeof HaComponentSchema>;
export type HaDeviceConfig = z.infer<typeof HaDeviceConfigSchema>;
export type HaNodeState = z.infer<typeof HaNodeStateSchema>;
