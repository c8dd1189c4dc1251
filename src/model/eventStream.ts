import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { RunEvent } from './events';
import { API_NAMESPACE } from './request';
import { EventGapError, RunModel } from './runModel';

/** The first wait before connecting again; it doubles with each failed attempt. */
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;
/**
 * Attempts in a row that may fail before giving up. A WebSocket never sees the HTTP status,
 * so a run the server does not know (404) looks like a server that is down: both end here.
 */
const MAX_ATTEMPTS = 10;
/** The close code of `handOver` (the server's HANDED_OVER). */
const HANDED_OVER = 4000;

/**
 * Keeps a RunModel in step with its run on the server, over the run's event WebSocket.
 *
 * Each connection asks for the events from `model.lastSeq + 1` on, and the model ignores any it
 * has applied, so a dropped connection is resumed without missing or repeating an event.
 */
export class RunEventStream implements IDisposable {
  constructor(options: RunEventStream.IOptions) {
    this.runId = options.runId;
    this.model = options.model;
    this._settings = options.settings;
    this._role = options.role ?? 'viewer';
    this._makeSocket =
      options.makeSocket ?? (url => new this._settings.WebSocket(url));
    this._connect();
  }

  readonly runId: string;
  readonly model: RunModel;

  get status(): RunEventStream.Status {
    return this._status;
  }

  /** Events are arriving live; false while connecting, reconnecting, failed or disposed. */
  get connected(): boolean {
    return this._status === 'connected';
  }

  /** Emitted with the new status when it changes. */
  get connectionChanged(): ISignal<this, RunEventStream.Status> {
    return this._connectionChanged;
  }

  /** Emitted once when the stream gives up; it does not connect again. */
  get failed(): ISignal<this, Error> {
    return this._failed;
  }

  get isDisposed(): boolean {
    return this._status === 'disposed';
  }

  /** Closes the connection for good. */
  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._stop();
    this._setStatus('disposed');
    Signal.clearData(this);
  }

  /**
   * Closes the connection for good, telling the server that this writer applied every event
   * of the finished run to a notebook that stays open: the server then leaves the file to the
   * notebook's own saves, rather than write it behind the open notebook's back.
   */
  handOver(): void {
    if (this.isDisposed) {
      return;
    }
    this._closeCode = HANDED_OVER;
    this.dispose();
  }

  private _connect(): void {
    this._attempts += 1;
    const socket = this._makeSocket(this._url(this.model.lastSeq + 1));
    socket.onopen = () => {
      this._attempts = 0;
      this._setStatus('connected');
    };
    socket.onmessage = message => this._receive(message.data);
    socket.onclose = () => {
      this._socket = null;
      this._retry();
    };
    this._socket = socket;
  }

  /** The events from `from` on, as the run's event handler serves them. */
  private _url(from: number): string {
    const settings = this._settings;
    const path = URLExt.join(
      settings.wsUrl,
      API_NAMESPACE,
      'runs',
      encodeURIComponent(this.runId),
      'events'
    );
    let url = `${path}?from=${from}&role=${this._role}`;
    // As JupyterLab's kernel connection does: a browser WebSocket cannot send the auth header.
    if (settings.appendToken && settings.token !== '') {
      url += `&token=${encodeURIComponent(settings.token)}`;
    }
    return url;
  }

  private _receive(data: unknown): void {
    let event: RunEvent;
    try {
      event = parseEvent(data);
    } catch (error) {
      // The server sent something that is not an event: asking again would get it again.
      this._giveUp(error as Error);
      return;
    }
    try {
      this.model.apply(event);
    } catch (error) {
      if (!(error instanceof EventGapError)) {
        throw error;
      }
      // Something was lost: subscribe again from the first event missing.
      this._closeSocket();
      this._retry();
    }
  }

  /** Connects again after a wait that grows with each failed attempt, or gives up. */
  private _retry(): void {
    if (this._attempts >= MAX_ATTEMPTS) {
      this._giveUp(
        new Error(
          `lost the events of run ${this.runId}: ${MAX_ATTEMPTS} attempts to connect failed`
        )
      );
      return;
    }
    this._setStatus('reconnecting');
    const delay = Math.min(FIRST_DELAY_MS * 2 ** this._attempts, MAX_DELAY_MS);
    this._timer = setTimeout(() => {
      this._timer = null;
      this._connect();
    }, delay);
  }

  private _giveUp(error: Error): void {
    this._stop();
    this._setStatus('failed');
    this._failed.emit(error);
  }

  private _stop(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._closeSocket();
  }

  /** Closes the socket without it calling back: a close asked for is not a drop. */
  private _closeSocket(): void {
    const socket = this._socket;
    if (!socket) {
      return;
    }
    this._socket = null;
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.close(this._closeCode);
  }

  private _setStatus(status: RunEventStream.Status): void {
    if (status !== this._status) {
      this._status = status;
      this._connectionChanged.emit(status);
    }
  }

  private _settings: ServerConnection.ISettings;
  private _role: 'viewer' | 'writer';
  private _makeSocket: (url: string) => WebSocket;
  private _socket: WebSocket | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  /** Connection attempts since the last one that opened. */
  private _attempts = 0;
  /** How the socket is closed: normally (1000), or as a writer that handed over. */
  private _closeCode = 1000;
  private _status: RunEventStream.Status = 'connecting';
  private _connectionChanged = new Signal<this, RunEventStream.Status>(this);
  private _failed = new Signal<this, Error>(this);
}

export namespace RunEventStream {
  export interface IOptions {
    runId: string;
    /** The model the events are applied to; the stream starts after its lastSeq. */
    model: RunModel;
    settings: ServerConnection.ISettings;
    /** 'writer': this client writes the run's cells into the open notebook. Default 'viewer'. */
    role?: 'viewer' | 'writer';
    /** Opens the WebSocket; default `new settings.WebSocket(url)`. */
    makeSocket?: (url: string) => WebSocket;
  }

  /**
   * connecting: before the first connection opens; connected: events arrive live;
   * reconnecting: the connection dropped and is being made again; failed: given up;
   * disposed: closed for good.
   */
  export type Status =
    'connecting' | 'connected' | 'reconnecting' | 'failed' | 'disposed';
}

/** One message of the stream as an event; throws for anything else. */
function parseEvent(data: unknown): RunEvent {
  const value: unknown = JSON.parse(String(data));
  const fields = (typeof value === 'object' && value !== null ? value : {}) as {
    seq?: unknown;
    type?: unknown;
  };
  if (!Number.isInteger(fields.seq) || typeof fields.type !== 'string') {
    throw new Error(`not a run event: ${String(data).slice(0, 200)}`);
  }
  return value as RunEvent;
}
