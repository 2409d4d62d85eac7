/**
 * The broker's public listeners besides plain TCP: TLS (`mqtts://`) and WebSocket (`ws://` or
 * `wss://`, path `/mqtt`, for browsers). Each one hands Aedes a byte stream through the same
 * packet-size guard and the same `aedes.authenticate`/ACL as the TCP listener; this file only
 * builds the servers.
 *
 * WebSocket and the packet guard: the guard is applied to the Duplex from `createWebSocketStream`
 * (it uses only stream methods and events, so it is not tied to net.Socket). That guard sees bytes
 * only once the `ws` package has reassembled a whole WebSocket message, though, so `ws`'s own
 * `maxPayload` is set from `maxPacketBytes` (plus the 5-byte MQTT fixed header): a client sending
 * one huge message is cut by `ws` before it is buffered, and one announcing a huge MQTT packet over
 * many small messages is cut by the guard.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server, Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../shared/logger.js';

/** The URL path of the WebSocket listener (what MQTT.js and most browser clients dial by default). */
export const WS_PATH = '/mqtt';

/** MQTT fixed header: 1 type byte and at most 4 Remaining Length bytes (MQTT 3.1.1 §2.2). */
const FIXED_HEADER_MAX = 5;

/** TLS settings for the `mqtts://` listener and, with `ws.tls`, the `wss://` one (PEM file paths). */
export interface TlsSettings {
  port: number;
  certFile: string;
  keyFile: string;
  /** CA bundle client certificates must be signed by (with `requireClientCert`). */
  caFile?: string;
  /** Refuse a TLS handshake without a client certificate signed by `caFile`. */
  requireClientCert: boolean;
}

export interface WsSettings {
  port: number;
  /** Serve `wss://` with the TLS certificate (needs `tls`). */
  tls: boolean;
}

/** A listening endpoint: a server and what to tell the operator about it. */
export interface Listener {
  scheme: 'mqtt' | 'mqtts' | 'ws' | 'wss';
  port: number;
  server: Server;
  /** Path clients dial (WebSocket only). */
  path?: string;
  /** Extra work on close (the WebSocket server, idle HTTP keep-alive connections). */
  close?: () => void;
}

/** Reads a PEM file named by a server setting, with the setting in the error. */
function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${setting} ${path}: ${(err as Error).message}`);
  }
}

/** The `node:tls` server options for `settings`; files are read once, at start. */
function secureContext(settings: TlsSettings) {
  if (settings.requireClientCert && !settings.caFile)
    throw new Error('--tls-client-cert needs --tls-ca (the CA client certificates must be signed by)');
  return {
    cert: readPem('--tls-cert', settings.certFile),
    key: readPem('--tls-key', settings.keyFile),
    ...(settings.caFile ? { ca: readPem('--tls-ca', settings.caFile) } : {}),
    requestCert: settings.requireClientCert,
    rejectUnauthorized: settings.requireClientCert,
    // Same bound as Aedes' connectTimeout: a half-open handshake does not hold a slot for 2 minutes.
    handshakeTimeout: 10_000,
  };
}

const remoteOf = (socket: { remoteAddress?: string; remotePort?: number } | undefined) =>
  socket ? `${socket.remoteAddress}:${socket.remotePort}` : undefined;

/**
 * The TLS listener: each connection, once its handshake succeeds (with a valid client certificate
 * when required), goes to `handle` like a TCP one.
 */
export function tlsListener(settings: TlsSettings, handle: (socket: Socket) => void, log: Logger): Listener {
  const server = createTlsServer(secureContext(settings), (socket: TLSSocket) => handle(socket));
  server.on('tlsClientError', (err, socket) =>
    log.warn(
      { remote: remoteOf(socket), err },
      settings.requireClientCert ? 'TLS handshake failed (a valid client certificate is required)' : 'TLS handshake failed',
    ),
  );
  return { scheme: 'mqtts', port: settings.port, server };
}

/**
 * The WebSocket listener on `WS_PATH` (HTTP or HTTPS). Each WebSocket becomes a byte stream for
 * `handle`; `maxPacketBytes` bounds a single WebSocket message (see the header comment).
 */
export function wsListener(
  settings: WsSettings,
  tls: TlsSettings | undefined,
  maxPacketBytes: number,
  handle: (stream: Duplex, req: IncomingMessage, remote: string | undefined) => void,
  log: Logger,
): Listener {
  if (settings.tls && !tls) throw new Error('--ws-tls needs --tls-cert and --tls-key');
  const notMqtt = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end(`MQTT over WebSocket: connect to ${WS_PATH}\n`);
  };
  const server: HttpServer = settings.tls && tls ? createHttpsServer(secureContext(tls), notMqtt) : createHttpServer(notMqtt);
  if (settings.tls) {
    server.on('tlsClientError', (err: Error, socket: TLSSocket) =>
      log.warn({ remote: remoteOf(socket), err }, 'TLS handshake failed (WebSocket)'),
    );
  }
  const wss = new WebSocketServer({ server, path: WS_PATH, maxPayload: maxPacketBytes + FIXED_HEADER_MAX, perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    req.socket.setNoDelay(true);
    handle(createWebSocketStream(ws), req, remoteOf(req.socket));
  });
  wss.on('wsClientError', (err, socket) => log.debug({ remote: remoteOf(socket as Socket), err }, 'WebSocket handshake failed'));
  wss.on('error', (err) => log.warn({ err }, 'WebSocket server error'));
  return {
    scheme: settings.tls ? 'wss' : 'ws',
    port: settings.port,
    path: WS_PATH,
    server,
    close: () => {
      wss.close();
      server.closeAllConnections();
    },
  };
}
