/**
 * Clients that fail over between brokers (issue 20): an agent and `cutter run` given several
 * broker URLs (comma-separated --broker / CUTTER_BROKER) whose first one does not answer move on
 * to the next and work as usual.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cli, type Daemon, freePort, startAgent, startServer } from '../harness.js';
import { BrokerUrlsSchema, serversOption } from '../../shared/broker-urls.js';

describe('several broker URLs', () => {
  const daemons: Daemon[] = [];
  afterAll(async () => {
    for (const d of daemons) await d.stop();
  });

  it('accepts a comma-separated list of URLs and refuses a list with a part that is no URL', () => {
    expect(BrokerUrlsSchema.safeParse('mqtt://a:1883, mqtts://b').success).toBe(true);
    expect(BrokerUrlsSchema.safeParse('mqtt://a:1883,not a url').success).toBe(false);
    expect(serversOption(['mqtt://a:1884', 'mqtts://b']).servers).toEqual([
      { host: 'a', port: 1884, protocol: 'mqtt' },
      { host: 'b', port: 8883, protocol: 'mqtts' },
    ]);
  });

  it('an agent and cutter run whose first broker is down use the next one', async () => {
    const server = await startServer();
    daemons.push(server.daemon);
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const both = `${dead},${server.url}`;
    daemons.push(await startAgent(both, 'urls1', ['--allow-exec']));
    const r = await cli(['run', 'exec', '--', 'sh', '-c', 'echo through-the-second; exit 4'], { broker: both });
    expect(r.stdout).toContain('through-the-second');
    expect(r.code).toBe(4);
  }, 60_000);
});
