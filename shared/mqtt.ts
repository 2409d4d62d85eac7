/**
 * The one MQTT client wrapper every cutter process uses (agent, controller, CLI).
 *
 * - Connects with MQTT.js `connect()` (not `connectAsync`, which gives up on the first refused
 *   connection — protocol-facts §5.2), so a daemon started before its broker keeps retrying.
 * - Speaks MQTT 3.1.1 by default (Aedes 1.2 speaks only 3.1.1); with protocolVersion 5 it sets a
 *   session expiry so `clean: false` keeps the session (protocol-facts §5.4).
 * - Routes messages by topic filter to handlers that receive zod-validated payloads; a payload that
 *   fails validation is logged and dropped, and a handler that throws is logged, never fatal.
 * - For `mqtts://` and `wss://` URLs, trusts a private CA (`caFile`) and presents a client
 *   certificate (`certFile`/`keyFile`) when given, in `opts.tls` or set once per process with
 *   `setDefaultTls()` (what the CLI and the daemons do after loading their config).
 */
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { z } from 'zod';
import { type Decoded, decode } from './codec.js';
import { type JsonLimits, limitsForTopic } from './limits.js';
import { brokerUrls, serversOption } from './broker-urls.js';
import { CutterError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import { packetNumberCache } from './mqtt-settings.js';
import { topicMatches } from './topics.js';
import { warnLimiter } from './warn-limiter.js';

export type { MqttClient };

export interface ConnectOptions {
  /** Broker URL: mqtt://host:port, mqtts://, ws://, wss://; or several, comma-separated (tried in turn, shared/broker-urls.ts). */
  url: string;
  clientId: string;
  /** false = persistent session (queued QoS 1 messages survive a disconnect). */
  clean: boolean;
  /** Keepalive, seconds; the broker fires the last will after 1.5× this without traffic. */
  keepaliveSec?: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
  username?: string;
  password?: string;
  /** 4 = MQTT 3.1.1 (default), 5 = MQTT 5. */
  protocolVersion?: 4 | 5;
  /**
   * Called with the client before it connects: register message routes here, because a broker
   * delivers a persistent session's queued messages right after CONNACK, before `connectMqtt`
   * resolves, and a message with no route then is acknowledged and lost.
   */
  onClient?: (client: MqttClient) => void;
  /** Give up after this many ms without a first connection (CLI); undefined = retry forever (daemons). */
  timeoutMs?: number;
  /** Delay between reconnect attempts, ms. */
  reconnectPeriodMs?: number;
  /**
   * Dial through this stream instead of `url` (called again at every reconnect): the embedded
   * broker's in-process link for clients in the server's own process. `url` then only names the
   * broker in messages.
   */
  streamBuilder?: () => Duplex;
  log?: Logger;
  /** TLS files for `mqtts://` and `wss://`; absent = the process default (`setDefaultTls`). */
  tls?: TlsFiles;
}

/** PEM files for a TLS connection (the `caFile`, `certFile`, `keyFile` config keys). */
export interface TlsFiles {
  /** CA bundle to trust instead of the system's CAs (a private or self-signed CA). */
  caFile?: string;
  /** Client certificate, for a broker that requires one. */
  certFile?: string;
  /** Private key of `certFile`. */
  keyFile?: string;
}

let defaultTls: TlsFiles = {};

/**
 * Sets the TLS files every later `connectMqtt` call without its own `tls` uses: the CLI and the
 * daemons call it with their loaded config, so every client of the process dials the same way.
 */
export function setDefaultTls(files: TlsFiles): void {
  defaultTls = { caFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile };
}

/**
 * Reads the TLS files into MQTT.js options (`ca`, `cert`, `key`; the server certificate is always
 * verified: `rejectUnauthorized` stays true).
 * @throws CutterError `INVALID_CONFIG` naming the key and file that cannot be read, or a
 *   certificate given without its key (or the reverse).
 */
export function tlsOptions(files: TlsFiles): Pick<IClientOptions, 'ca' | 'cert' | 'key'> {
  if (Boolean(files.certFile) !== Boolean(files.keyFile)) {
    throw new CutterError(
      'INVALID_CONFIG',
      `invalid config: ${files.certFile ? 'certFile is set without keyFile' : 'keyFile is set without certFile'}: a client certificate needs both`,
    );
  }
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CutterError('INVALID_CONFIG', `invalid config: ${key} = "${path}": ${errorMessage(err)}`);
    }
  };
  return {
    ...(files.caFile ? { ca: read('caFile', files.caFile) } : {}),
    ...(files.certFile ? { cert: read('certFile', files.certFile) } : {}),
    ...(files.keyFile ? { key: read('keyFile', files.keyFile) } : {}),
  };
}

/** Node's codes for a server certificate that fails verification. */
const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)_/;

export { usePacketNumberCache } from './mqtt-settings.js';

/**
 * Connects and resolves once the first CONNACK arrives.
 * @throws CutterError `BROKER_UNREACHABLE` after `timeoutMs` without a connection, or at once
 *   when the broker refuses the connection (CONNACK error; `details.connackCode` is its return code:
 *   2 identifier rejected, 4 bad credentials, 5 not authorized — MQTT 3.1.1 §3.2.2.3).
 */
export function connectMqtt(opts: ConnectOptions): Promise<MqttClient> {
  const v5 = opts.protocolVersion === 5;
  let tls: ReturnType<typeof tlsOptions>;
  try {
    tls = tlsOptions(opts.tls ?? defaultTls);
  } catch (err) {
    return Promise.reject(err);
  }
  const options: IClientOptions = {
    ...tls,
    clientId: opts.clientId,
    clean: opts.clean,
    keepalive: opts.keepaliveSec ?? 30,
    reconnectPeriod: opts.reconnectPeriodMs ?? 1000,
    connectTimeout: 10_000,
    protocolVersion: opts.protocolVersion ?? 4,
    username: opts.username,
    password: opts.password,
    will: opts.will,
    resubscribe: true,
    writeCache: packetNumberCache(),
    ...(v5 && !opts.clean ? { properties: { sessionExpiryInterval: 7 * 24 * 3600 } } : {}),
  };
  // Several URLs: MQTT.js dials the next one at each reconnect (shared/broker-urls.ts).
  const urls = brokerUrls(opts.url);
  const client = opts.streamBuilder
    ? new mqtt.MqttClient(opts.streamBuilder as never, options)
    : urls.length > 1
      ? mqtt.connect({ ...options, ...serversOption(urls) })
      : mqtt.connect(opts.url, options);
  opts.onClient?.(client);
  // Small messages must not wait for Nagle's algorithm (each request/reply would cost ~40 ms).
  client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true));
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let lastError = '';
    const fail = (err: CutterError) => {
      clearTimeout(timer);
      client.removeListener('connect', onConnect);
      client.end(true);
      reject(err);
    };
    const onConnect = () => {
      clearTimeout(timer);
      client.removeListener('error', onError);
      client.on('error', (err) => opts.log?.warn({ err }, 'mqtt error'));
      resolve(client);
    };
    const onError = (err: Error & { code?: string | number }) => {
      const hint =
        typeof err.code === 'string' && CERT_ERRORS.test(err.code)
          ? `${err.code}: the broker's TLS certificate is not trusted; set --ca-file or CUTTER_CA_FILE to the CA that signed it`
          : undefined;
      lastError = hint ? `${errorMessage(err)} (${hint})` : errorMessage(err);
      // A CONNACK refusal (numeric code) will not get better by retrying.
      if (typeof err.code === 'number')
        fail(new CutterError('BROKER_UNREACHABLE', `broker ${opts.url} refused the connection: ${lastError}`, { connackCode: err.code }));
      else opts.log?.warn({ url: opts.url, err, ...(hint ? { hint } : {}) }, 'broker not reachable yet, retrying');
    };
    client.once('connect', onConnect);
    client.on('error', onError);
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          fail(
            new CutterError(
              'BROKER_UNREACHABLE',
              `cannot reach the broker at ${opts.url} within ${opts.timeoutMs} ms${lastError ? ` (${lastError})` : ''}: is \`cutter server\` running there? Set --broker or CUTTER_BROKER.`,
            ),
          ),
        opts.timeoutMs,
      );
    }
  });
}

/**
 * Wraps an MQTT `'message'` listener so that a throw inside it is logged (rate-limited) instead of
 * escaping into MQTT.js's packet handling, where it is an uncaught exception that ends the process
 * (plan-14 F3: a 20,000-deep object made JSON.stringify throw there).
 */
export function guardListener<A extends unknown[]>(log: Logger | undefined, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      if (log) warnLimiter(log).warn('handler-failed', { topic: args[0], err }, 'message listener failed');
    }
  };
}

type Route = {
  filter: string;
  handle: (topic: string, payload: Buffer, retained: boolean) => void | Promise<void>;
  ackWhenHandled: boolean;
  qos: 0 | 1;
};

type RouteOptions = {
  /**
   * Decodes a payload instead of `decode(schema, …)` (shared/codec.ts), for topics that also carry
   * binary frames (shared/log-frame.ts `decodeTaskEvent`); it must bound what it reads as `decode` does.
   */
  decoder?: (payload: Buffer, limits: JsonLimits) => Decoded<unknown>;
  onEmpty?: (topic: string) => void;
  onInvalid?: (topic: string, payload: Buffer, error: string) => void | Promise<void>;
  /**
   * Acknowledge a QoS 1 message on this route (PUBACK) only once the handler's promise settles,
   * so a message whose effect was not yet made durable is delivered again, to the next holder of a
   * persistent session, if this process dies first. MQTT.js sends the PUBACK from `handleMessage`'s
   * callback and reads the next packet only after it (MQTT.js README, "handleMessage"), so such a
   * handler holds the whole inbound stream: it must settle quickly, and only await what has to
   * precede the acknowledgement.
   */
  ackWhenHandled?: boolean;
  /**
   * The subscription's QoS (default 1). 0 for a stream where each message replaces the one before
   * and a lost one is made up by the next (node heartbeats): the broker then keeps no in-flight
   * copy and waits for no PUBACK of it.
   */
  qos?: 0 | 1;
};

/**
 * Dispatches incoming messages to validated handlers. One router per client.
 */
export class MessageRouter {
  private readonly routes: Route[] = [];
  /** Messages whose PUBACK waits for their handlers (routes with `ackWhenHandled`). */
  private readonly held = new WeakMap<object, Promise<unknown>>();
  private acksHeld = false;

  constructor(
    private readonly client: MqttClient,
    private readonly log: Logger,
  ) {
    client.on(
      'message',
      guardListener(log, (topic, payload, packet) => {
        let holding: Promise<unknown>[] | undefined;
        for (const route of this.routes) {
          if (!topicMatches(route.filter, topic)) continue;
          const run = Promise.resolve()
            .then(() => route.handle(topic, payload, packet.retain))
            .catch((err: unknown) => this.log.error({ topic, err }, 'message handler failed'));
          if (route.ackWhenHandled) (holding ??= []).push(run);
        }
        if (holding) this.held.set(packet, Promise.all(holding));
      }),
    );
  }

  /**
   * Makes the client's PUBACK of a held message wait for its handlers: MQTT.js calls
   * handleMessage right after emitting 'message', and sends the PUBACK when its callback runs.
   * Installed with the first `ackWhenHandled` route, so other clients keep MQTT.js's own.
   */
  private holdAcks(): void {
    if (this.acksHeld) return;
    this.acksHeld = true;
    const handleMessage = this.client.handleMessage.bind(this.client);
    this.client.handleMessage = (packet, callback) => {
      const held = this.held.get(packet);
      if (!held) return handleMessage(packet, callback);
      this.held.delete(packet);
      void held.then(() => handleMessage(packet, callback));
    };
  }

  /**
   * Subscribes to `filter` (QoS 1 unless `opts.qos`) and calls `handler` with each payload that
   * passes `schema` (`route()` then a SUBSCRIBE).
   */
  async on<S extends z.ZodType>(
    filter: string,
    schema: S,
    handler: (value: z.infer<S>, topic: string, retained: boolean) => void | Promise<void>,
    opts: RouteOptions = {},
  ): Promise<void> {
    this.route(filter, schema, handler, opts);
    await this.client.subscribeAsync(filter, { qos: opts.qos ?? 1 });
  }

  /** Subscribes to every routed filter, each at its route's QoS: for routes added with `route()` before connecting. */
  async subscribeAll(): Promise<void> {
    await this.client.subscribeAsync(Object.fromEntries(this.routes.map((r) => [r.filter, { qos: r.qos }])));
  }

  /**
   * Routes messages on `filter` to `handler`, without subscribing. Payloads are checked against the
   * limits of their topic's kind (shared/limits.ts) before they are parsed. Invalid payloads are
   * logged at debug with the topic and the first bad field or limit (at warn rate-limited: one line
   * per 10 s with `suppressed: n`), then dropped (and passed to `opts.onInvalid`,
   * e.g. to answer the sender). An empty payload (a cleared retained message) is passed to
   * `opts.onEmpty` when given, else ignored.
   */
  route<S extends z.ZodType>(
    filter: string,
    schema: S,
    handler: (value: z.infer<S>, topic: string, retained: boolean) => void | Promise<void>,
    opts: RouteOptions = {},
  ): void {
    if (opts.ackWhenHandled) this.holdAcks();
    this.routes.push({
      filter,
      ackWhenHandled: opts.ackWhenHandled === true,
      qos: opts.qos ?? 1,
      handle: (topic, payload, retained) => {
        if (payload.length === 0) {
          opts.onEmpty?.(topic);
          return;
        }
        const decoded = opts.decoder ? opts.decoder(payload, limitsForTopic(topic)) : decode(schema, payload, limitsForTopic(topic));
        if (!decoded.ok) {
          // Every drop at debug; at warn, one line per 10 s with a count (a flood must not flood the log).
          this.log.debug({ topic, bytes: payload.length, error: decoded.error }, 'dropped invalid message');
          warnLimiter(this.log).warn('invalid-message', { topic, bytes: payload.length, error: decoded.error }, 'dropped invalid input');
          return opts.onInvalid?.(topic, payload, decoded.error);
        }
        return handler(decoded.value as z.infer<S>, topic, retained);
      },
    });
  }
}
