/** The "Home Assistant" section of docs/protocol.md: the topics and payloads of controller/extensions/ha. */
import { haDeviceConfig, haNodeId, haNodeState } from '../../controller/extensions/ha/discovery.js';
import { HaDeviceConfigSchema, HaNodeStateSchema } from '../../shared/schemas/ha.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';
import { haTopics } from '../../shared/topics.js';
import { NODE, exampleOnline } from './examples.js';
import { code, table } from './format.js';

/**
 * Home Assistant's topics (controller/extensions/ha): built with `haTopics()`, the example discovery config
 * with the extension's own builder from the online example node, validated with its schema.
 */
export function homeAssistantSection(): string[] {
  const ha = haTopics();
  const view = {
    node: NODE,
    state: 'online' as const,
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 400,
    reservedMemory: 0,
    status: NodeStatusSchema.parse(exampleOnline),
  };
  const { topic, payload } = haDeviceConfig(view, { prefix: 'cutter', topics: ha, version: '0.1.0' });
  HaDeviceConfigSchema.parse(payload);
  const state = HaNodeStateSchema.parse(haNodeState(view, Date.UTC(2026, 0, 1)));
  const rows: [string, string, string, string, string][] = [
    [
      ha.deviceConfig(haNodeId('cutter', NODE)),
      'server → Home Assistant',
      'yes',
      'device discovery config (below); empty = device removed',
      'https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload',
    ],
    [
      ha.haStatus(),
      'Home Assistant → server',
      'no',
      "`online` (HA's birth): the server publishes everything again",
      "HA's birth and last will",
    ],
    [ha.state(NODE), 'server → Home Assistant', 'yes', 'node state JSON (below)', 'memory and CPU at most every 10 s; the rest at once'],
    [ha.availability(NODE), 'server → Home Assistant', 'yes', '`online` / `offline`', 'the node (its last will, or missed heartbeats)'],
    [ha.bridgeAvailability(), 'server → Home Assistant', 'yes', '`online` / `offline`', 'the server itself; its last will is `offline`'],
    [ha.drainCommand(NODE), 'Home Assistant → server', 'no', '`ON` drain, `OFF` resume', 'retained commands are ignored'],
  ];
  return [
    '## Home Assistant',
    `With discovery on (the default), the server publishes to Home Assistant's discovery prefix (default ${code('homeassistant')}), on its own broker or on ${code('--ha-broker')} (MQTT 5). HA ids are ${code('[a-zA-Z0-9_-]')}: a node id with other characters gets them replaced and a 6-digit hash appended.`,
    table(
      ['topic', 'from → to', 'retained', 'payload', 'notes'],
      rows.map(([tp, ft, r, p, n]) => [code(tp), ft, r, p, n]),
    ),
    `Example discovery config on ${code(topic)}:`,
    `\`\`\`json\n${JSON.stringify(payload, null, 2)}\n\`\`\``,
    'Example node state:',
    `\`\`\`json\n${JSON.stringify(state, null, 2)}\n\`\`\``,
  ];
}
