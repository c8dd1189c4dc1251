import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import {
  IAgentStatus,
  IAllowedTools,
  IConversation,
  IDownload,
  IModelSettings,
  IRunInfo
} from './events';

/**
 * The server extension's REST API, typed; the WebSocket lives in eventStream.ts.
 */
export class AgentAPI {
  constructor(readonly settings: ServerConnection.ISettings) {}

  status(): Promise<IAgentStatus> {
    return requestAPI<IAgentStatus>('status', {}, this.settings);
  }

  /** Starts downloading the local model in effect. */
  downloadLocalModel(): Promise<IDownload> {
    return this.post('local-model/download');
  }

  /** Stops the download under way. */
  cancelDownload(): Promise<IDownload | null> {
    return requestAPI<IDownload | null>(
      'local-model/download',
      { method: 'DELETE' },
      this.settings
    );
  }

  /** Saves the model the agent uses from now on; answers the server's status. */
  saveModel(settings: IModelSettings): Promise<IAgentStatus> {
    return requestAPI<IAgentStatus>(
      'model',
      { method: 'PUT', body: JSON.stringify(settings) },
      this.settings
    );
  }

  /** The models an OpenAI-compatible endpoint lists (its key: null for the one saved). */
  async endpointModels(
    baseUrl: string,
    apiKey: string | null
  ): Promise<string[]> {
    const answer = await this.post<{ models: string[] }>(
      'model/endpoint-models',
      { base_url: baseUrl, api_key: apiKey }
    );
    return answer.models;
  }

  /** The progress of the download asked for last (null when none was). */
  localModelDownload(): Promise<IDownload | null> {
    return requestAPI<IDownload | null>(
      'local-model/download',
      {},
      this.settings
    );
  }

  startRun(options: {
    path: string;
    prompt: string;
    execution?: 'auto' | 'ask';
    max_steps?: number;
    model?: string;
    /** 'frontend': the caller applies the cells to the open notebook itself. */
    writer?: 'server' | 'frontend';
    /** The person's own MCP servers, by name, besides the server's configuration's. */
    mcp_servers?: Record<string, unknown>;
  }): Promise<IRunInfo> {
    return this.post('runs', options);
  }

  async runs(path: string): Promise<IRunInfo[]> {
    const query = `runs?path=${encodeURIComponent(path)}`;
    const answer = await requestAPI<{ runs: IRunInfo[] }>(
      query,
      {},
      this.settings
    );
    return answer.runs;
  }

  /** The notebook's conversation, which its next run continues. */
  conversation(path: string): Promise<IConversation> {
    return requestAPI<IConversation>(
      `conversation?path=${encodeURIComponent(path)}`,
      {},
      this.settings
    );
  }

  /** Starts the notebook's conversation afresh; its kernel keeps its state. */
  newConversation(path: string): Promise<IConversation> {
    return requestAPI<IConversation>(
      `conversation?path=${encodeURIComponent(path)}`,
      { method: 'DELETE' },
      this.settings
    );
  }

  /** The MCP tools the person allowed always on the notebook, as `{server}__{tool}`. */
  async allowedTools(path: string): Promise<string[]> {
    const answer = await requestAPI<IAllowedTools>(
      `allowed-tools?path=${encodeURIComponent(path)}`,
      {},
      this.settings
    );
    return answer.tools;
  }

  /** Takes an "always" back: the tool's calls on the notebook ask the person again; answers
   * the tools still allowed always. */
  async askAgain(path: string, tool: string): Promise<string[]> {
    const query = `path=${encodeURIComponent(path)}&tool=${encodeURIComponent(tool)}`;
    const answer = await requestAPI<IAllowedTools>(
      `allowed-tools?${query}`,
      { method: 'DELETE' },
      this.settings
    );
    return answer.tools;
  }

  run(runId: string): Promise<IRunInfo> {
    return requestAPI<IRunInfo>(`runs/${runId}`, {}, this.settings);
  }

  stop(runId: string): Promise<IRunInfo> {
    return this.post(`runs/${runId}/stop`);
  }

  /** An interrupted run goes on where it stopped, offered the tools of the person's MCP
   * servers as `mcpServers` lists them (left out: those it had). */
  continue(
    runId: string,
    mcpServers?: Record<string, unknown>
  ): Promise<IRunInfo> {
    return this.post(`runs/${runId}/continue`, { mcp_servers: mcpServers });
  }

  accept(runId: string, cellId: string): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/cells/${encodeURIComponent(cellId)}/accept`
    );
  }

  reject(runId: string, cellId: string, keepState = false): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/cells/${encodeURIComponent(cellId)}/reject`,
      { keep_state: keepState }
    );
  }

  /** Undoes the rejection of the cell: it comes back, proposed, as it was. */
  restore(runId: string, cellId: string): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/cells/${encodeURIComponent(cellId)}/restore`
    );
  }

  /** The agent rewrites the cell; a finished run goes on for it, offered the tools of the
   * person's MCP servers as `mcpServers` lists them (left out: those it had). */
  regenerate(
    runId: string,
    cellId: string,
    instruction = '',
    mcpServers?: Record<string, unknown>
  ): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/cells/${encodeURIComponent(cellId)}/regenerate`,
      { instruction, mcp_servers: mcpServers }
    );
  }

  /** Lets an MCP tool's call run (`always`: and the tool's later calls on this notebook). */
  approveToolCall(
    runId: string,
    callId: string,
    always = false
  ): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/tool-calls/${encodeURIComponent(callId)}/approve`,
      { always }
    );
  }

  /** Refuses an MCP tool's call: the model is told. */
  denyToolCall(runId: string, callId: string): Promise<IRunInfo> {
    return this.post(
      `runs/${runId}/tool-calls/${encodeURIComponent(callId)}/deny`
    );
  }

  private post<T>(endPoint: string, body: unknown = {}): Promise<T> {
    return requestAPI<T>(
      endPoint,
      { method: 'POST', body: JSON.stringify(body) },
      this.settings
    );
  }
}
