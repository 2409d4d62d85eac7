/**
 * Port forwarding (`cutter run -p SERVER:CONTAINER`): the agent publishes the container's port
 * on a free port of the node and announces it (retained `PortAnnouncement` on
 * `nodes/{node}/ports/{task}`, cleared when the task ends); the server checks it can reach
 * `address:host` and proxies its own `server` port there, publishing a retained `ForwardState`
 * on `forwards/{task}` (`open` or `refused` with the reason; cleared when the forwards close).
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';

const Port = z.number().int().min(1).max(65535);

export const PortAnnouncementSchema = z.object({
  v: z.literal(1),
  node: IdSchema,
  taskId: IdSchema,
  attempt: z.number().int().nonnegative(),
  /**
   * Address the server can dial to reach this node (`cutter agent --advertise-address`); null
   * when the node gave none (behind NAT: its forwards are refused).
   */
  address: z.string().min(1).max(255).nullable(),
  ports: z.array(z.object({ container: Port, host: Port, server: Port })).max(16),
  ts: z.number().int().nonnegative(),
});
export type PortAnnouncement = z.infer<typeof PortAnnouncementSchema>;

export const ForwardStateSchema = z.object({
  v: z.literal(1),
  taskId: IdSchema,
  node: IdSchema,
  state: z.enum(['open', 'refused', 'closed']),
  forwards: z.array(z.object({ server: Port, container: Port, target: z.string().max(300) })).max(16),
  /** Why the forwards were refused, or why they closed. */
  reason: z.string().max(1000).optional(),
  ts: z.number().int().nonnegative(),
});
export type ForwardState = z.infer<typeof ForwardStateSchema>;
