// Sends alerts as RFC 5424 messages over UDP (RFC 5426, a datagram each),
// TCP (RFC 6587 octet counting) or TLS (RFC 5425). Syslog has no
// application-level acknowledgement: success means the kernel took the bytes.
// A connection the server closed is noticed and opened again on the next batch.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import type { Alert } from '../model/alert.js';
import type { SyslogSinkConfig } from '../config/defaults.js';
import { errorText, failure, retryable, type AlertSink, type SendResult } from './sink.js';
import { formatRfc5424, octetFrame, UDP_SAFE_BYTES } from './syslog-format.js';
import { loadTlsFiles, type TlsMaterial } from '../common/tls-files.js';
import { RepeatedLog, silentLog, type LogFn } from '../common/log.js';

export interface SyslogSinkOptions {
  procId?: number;
  log?: LogFn | undefined;
}

/** Runs `start` and settles on its callback, the timeout or the abort, whichever comes first. */
function within<T>(
  timeoutMs: number,
  signal: AbortSignal,
  what: string,
  start: (done: (err: Error | null, value?: T) => void) => void,
  onGiveUp: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, value?: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err === null) resolve(value as T);
      else reject(err);
    };
    const timer = setTimeout(() => {
      settle(new Error(`${what} took longer than ${timeoutMs} ms`));
      onGiveUp();
    }, timeoutMs);
    const onAbort = (): void => {
      settle(new Error('aborted by shutdown'));
      onGiveUp();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    start(settle);
  });
}

export class SyslogSink implements AlertSink {
  readonly name: string;
  private readonly tlsMaterial: TlsMaterial | null;
  private stream: net.Socket | null = null;
  private udp: dgram.Socket | null = null;
  private readonly procId: number;
  private readonly bigDatagram: RepeatedLog;

  /** Throws when TLS files cannot be read: a start-up failure. */
  constructor(
    private readonly cfg: SyslogSinkConfig,
    opts: SyslogSinkOptions = {},
  ) {
    this.name = cfg.name;
    this.procId = opts.procId ?? process.pid;
    this.tlsMaterial = cfg.transport === 'tls' ? loadTlsFiles(cfg, cfg.name) : null;
    const log = opts.log ?? silentLog;
    this.bigDatagram = new RepeatedLog(
      log,
      'warn',
      `An alert sent over UDP is larger than ${UDP_SAFE_BYTES} bytes: a receiver may cut or drop it; use transport tcp or tls.`,
    );
    if (cfg.transport === 'udp') {
      log('warn', 'This syslog sink sends over UDP: one alert a datagram, without delivery or order, and alerts are usually over 2 KB.', {
        sink: cfg.name,
        safeBytes: UDP_SAFE_BYTES,
        advice: 'use transport tcp or tls',
      });
    }
  }

  private get where(): string {
    return `${this.cfg.transport}://${net.isIPv6(this.cfg.host) ? `[${this.cfg.host}]` : this.cfg.host}:${this.cfg.port}`;
  }

  private message(a: Alert): string {
    return formatRfc5424(a, { facility: this.cfg.facility, format: this.cfg.format, sdId: this.cfg.sdId, procId: this.procId });
  }

  async send(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    if (signal.aborted) return retryable('aborted by shutdown');
    try {
      if (this.cfg.transport === 'udp') return await this.sendUdp(batch, signal);
      return await this.sendStream(batch, signal);
    } catch (err) {
      return retryable(`cannot deliver to ${this.where}: ${errorText(err)}`);
    }
  }

  private async sendUdp(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    let sock = this.udp;
    if (sock === null) {
      const s = dgram.createSocket(net.isIPv6(this.cfg.host) ? 'udp6' : 'udp4');
      // Errors also arrive through send callbacks; this keeps a late one from being unhandled.
      s.on('error', () => this.dropUdp(s));
      await within<void>(
        this.cfg.timeoutMs,
        signal,
        'resolving the syslog host',
        (done) => s.connect(this.cfg.port, this.cfg.host, () => done(null)),
        () => this.dropUdp(s),
      );
      this.udp = sock = s;
    }
    const s = sock;
    for (const a of batch) {
      const datagram = Buffer.from(this.message(a), 'utf8');
      if (datagram.length > UDP_SAFE_BYTES) this.bigDatagram.note({ sink: this.cfg.name, alert: a.uid, bytes: datagram.length });
      try {
        await within<void>(
          this.cfg.timeoutMs,
          signal,
          'sending a datagram',
          (done) => s.send(datagram, (err) => done(err ?? null)),
          () => undefined,
        );
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EMSGSIZE') {
          return failure(`alert ${a.uid} is ${datagram.length} bytes, too large for one UDP datagram; use tcp or tls`);
        }
        this.dropUdp(s);
        throw err;
      }
    }
    return { status: 'success' };
  }

  private dropUdp(s: dgram.Socket): void {
    if (this.udp === s) this.udp = null;
    try {
      s.close();
    } catch {
      // already closed
    }
  }

  private async connect(signal: AbortSignal): Promise<net.Socket> {
    if (this.stream !== null && !this.stream.destroyed && this.stream.writable) return this.stream;
    const { host, port } = this.cfg;
    const sock: net.Socket =
      this.tlsMaterial === null
        ? net.connect({ host, port })
        : tls.connect({
            host,
            port,
            ...this.tlsMaterial,
            servername: this.tlsMaterial.servername ?? (net.isIP(host) === 0 ? host : undefined),
          });
    const ready = this.tlsMaterial === null ? 'connect' : 'secureConnect';
    await within<void>(
      this.cfg.timeoutMs,
      signal,
      'connecting',
      (done) => {
        sock.once(ready, () => done(null));
        sock.once('error', (err) => done(err));
      },
      () => sock.destroy(),
    );
    sock.setKeepAlive(true, 30_000);
    // The server never talks back; its closing (or an error) means the next batch needs a new connection.
    sock.on('data', () => undefined);
    sock.on('error', () => this.dropStream(sock));
    sock.on('end', () => this.dropStream(sock));
    sock.on('close', () => this.dropStream(sock));
    this.stream = sock;
    return sock;
  }

  private dropStream(sock: net.Socket): void {
    if (this.stream === sock) this.stream = null;
    sock.destroy();
  }

  private async sendStream(batch: readonly Alert[], signal: AbortSignal): Promise<SendResult> {
    const sock = await this.connect(signal);
    const frames = Buffer.concat(batch.map((a) => octetFrame(this.message(a))));
    try {
      await within<void>(
        this.cfg.timeoutMs,
        signal,
        'writing to the syslog server',
        (done) => sock.write(frames, (err) => done(err ?? null)),
        () => this.dropStream(sock),
      );
    } catch (err) {
      this.dropStream(sock);
      throw err;
    }
    return { status: 'success' };
  }

  async close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    if (s !== null) {
      // end() lets written bytes go out; a dead peer must not hold shutdown up.
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => (s.destroy(), resolve()), 1000);
        s.end(() => (clearTimeout(t), s.destroy(), resolve()));
      });
    }
    const u = this.udp;
    this.udp = null;
    if (u !== null) this.dropUdp(u);
  }
}
