import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

import { IAgentStatus, IDownload } from './events';

/**
 * What the panel knows of the agent beside its runs: the server's status as it last said it,
 * and the person's settings for a request. `changed` tells of each change.
 */
export class AgentStatus {
  /** Emitted after each change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** What the server says of itself (`GET status`); null until it has answered. */
  get server(): IAgentStatus | null {
    return this._server;
  }

  /** Why the server could not be asked for its status (the error's message); null unless that
   * failed. */
  get failure(): string | null {
    return this._failure;
  }

  /** The person's settings for a request; undefined where they set none (the server's then). */
  get execution(): 'auto' | 'ask' | undefined {
    return this._execution;
  }

  get maxSteps(): number | undefined {
    return this._maxSteps;
  }

  /** Another model of the server's backend, by name; '' for the one in effect. */
  get model(): string {
    return this._model;
  }

  /** The person's own MCP servers, by name, as their settings list them (no secrets: those
   * are named as ${env:MCP_...}, which the server fills in). */
  get mcpServers(): Record<string, unknown> {
    return this._mcpServers;
  }

  /** The server's answer: a status, a saved model, a finished download. */
  set(status: IAgentStatus): void {
    this._server = status;
    this._changed.emit();
  }

  /** Asking the server for its status failed. */
  fail(error: unknown): void {
    this._failure = error instanceof Error ? error.message : String(error);
    this._changed.emit();
  }

  /** The progress of the local model's download, shown until the server's next status. */
  downloadProgress(download: IDownload): void {
    const local = this._server?.local_model;
    if (this._server && local) {
      this.set({ ...this._server, local_model: { ...local, download } });
    }
  }

  /** Reads the person's settings: only what they set, so that the server's own apply
   * otherwise. */
  readSettings(settings: ISettingRegistry.ISettings): void {
    this._execution = settings.get('execution').user as
      'auto' | 'ask' | undefined;
    this._maxSteps = settings.get('maxSteps').user as number | undefined;
    this._model = settings.get('model').composite as string;
    this._mcpServers = (settings.get('mcpServers').composite ?? {}) as Record<
      string,
      unknown
    >;
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _server: IAgentStatus | null = null;
  private _failure: string | null = null;
  private _execution: 'auto' | 'ask' | undefined = undefined;
  private _maxSteps: number | undefined = undefined;
  private _model = '';
  private _mcpServers: Record<string, unknown> = {};
}
