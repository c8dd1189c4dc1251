/**
 * The run's events and REST answers, as `jupyter_notebook_agent/server/rest-api.yml`
 * writes them down. Keep the two in step.
 */

/** Fields every event carries: `seq` counts from 0 without gaps. */
interface IEventBase {
  seq: number;
}

/** nbformat output, as the kernel produced it. */
export type Output = { output_type: string; [key: string]: unknown };

export type RunEvent = IEventBase &
  (
    | {
        type: 'run_started';
        run_id: string;
        task: string;
        model: string;
        max_steps: number;
        execution: 'auto' | 'ask';
        /** The notebook's conversation the run continues. */
        conversation_id: string;
      }
    | { type: 'step'; step: number; max_steps: number }
    | { type: 'message_delta'; text: string }
    | {
        type: 'model_turn';
        step: number;
        content: string;
        tool_calls: unknown[];
        usage: {
          prompt_tokens: number;
          completion_tokens: number;
          cached_tokens: number;
        };
        ttft_s: number;
        duration_s: number;
        cut_short: string;
      }
    | { type: 'tool_call'; call_id: string; name: string; arguments: string }
    | {
        type: 'tool_result';
        call_id: string;
        name: string;
        result: Record<string, unknown>;
        duration_s: number;
      }
    /** A call of an MCP server's tool waits for the person's approval (POST
     * runs/{id}/tool-calls/{call_id}/approve or deny). */
    | {
        type: 'tool_approval_requested';
        call_id: string;
        /** The MCP server's name in the configuration. */
        server: string;
        /** The tool's name on its server. */
        tool: string;
        arguments: Record<string, unknown>;
      }
    /** The wait ended; `always`: the tool runs without asking on this notebook from now on. */
    | {
        type: 'tool_approval_decided';
        call_id: string;
        decision: 'approve' | 'deny' | 'always' | 'stopped';
      }
    | {
        type: 'cell_proposed';
        cell_id: string;
        cell_type: 'code' | 'markdown';
        source: string;
        index: number;
        /** The cell it follows (null: first): places it in a notebook that changed meanwhile. */
        after_cell_id: string | null;
        metadata: Record<string, unknown>;
        streaming: boolean;
        /** The id of the model's tool call (add_cell) that writes it; null for a cell no call wrote. */
        call_id: string | null;
      }
    | {
        type: 'cell_source_delta';
        cell_id: string;
        text: string;
        reset?: boolean;
      }
    | {
        type: 'cell_edited';
        cell_id: string;
        source: string;
        version?: number;
        state?: 'proposed' | 'accepted';
      }
    | {
        type: 'cell_moved';
        cell_id: string;
        index: number;
        after_cell_id: string | null;
      }
    /** The cell begins to run, or waits for the kernel to. */
    | { type: 'cell_running'; cell_id: string }
    /** All the cell's outputs: so far while `running`, then once it ended. */
    | {
        type: 'cell_outputs';
        cell_id: string;
        status: 'running' | 'ok' | 'error' | 'timeout' | 'died' | 'stopped';
        outputs: Output[];
        execution_count: number | null;
      }
    | { type: 'cell_accepted'; cell_id: string }
    /** An interrupted run goes on (its server had stopped): `step` is the last it took. */
    | { type: 'run_continued'; step: number }
    | {
        type: 'cell_rejected';
        cell_id: string;
        keep_state?: boolean;
        /** It ran in the person's kernel, where what it did remains. */
        effects_remain?: boolean;
        reason?: string;
      }
    /** The person undid the rejection: the cell is back, proposed, as it was. */
    | {
        type: 'cell_restored';
        cell_id: string;
        cell_type: 'code' | 'markdown';
        source: string;
        index: number;
        after_cell_id: string | null;
        metadata: Record<string, unknown>;
        outputs: Output[];
        execution_count: number | null;
      }
    | {
        type: 'cell_regenerating';
        cell_id: string;
        instruction: string;
        source: string;
        version: number;
      }
    /** The notebook's kernel is busy with the person's cell: the agent's code waits. */
    | { type: 'kernel_waiting'; reason: 'busy' }
    /** Only the person may restart their kernel: the agent suggests it, and why. */
    | { type: 'kernel_restart_proposed'; reason: string }
    | { type: 'error'; message: string }
    | {
        type: 'run_finished';
        success: boolean;
        reason: string;
        summary: string;
      }
  );

export type RunEventType = RunEvent['type'];

/** What `GET runs/{id}` answers. */
export interface IRunInfo {
  id: string;
  path: string;
  prompt: string;
  model: string;
  execution: 'auto' | 'ask';
  /** `interrupted`: it was working when its server was killed; a later server keeps its
   * record and events. */
  state: 'running' | 'finished' | 'interrupted';
  step: number;
  max_steps: number;
  created: number;
  events: number;
  /** The notebook's kernel the run executes in, once it has one. */
  kernel_id: string | null;
  /** The conversation the run continues. */
  conversation_id: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  /** What the agent said to the person (markdown), a model turn's text each. */
  messages: string[];
  outcome: { success: boolean; reason: string; summary: string } | null;
  cells: {
    cell_id: string;
    state: 'proposed' | 'accepted' | 'rejected';
    versions: string[];
  }[];
}

/** What `GET status` answers. */
export interface IAgentStatus {
  version: string;
  model: {
    backend: string;
    name: string;
    base_url: string | null;
    /** Whether an API key is in effect (the key itself never leaves the server). */
    api_key_set: boolean;
    /** 'panel': the settings saved from the panel are in effect; 'server': its configuration. */
    source: 'panel' | 'server';
    /** Why no run can use the model, and how to fix it; null when it can. */
    problem: string | null;
  };
  /** The local model in effect when it comes from the hub (the default one when no model is
   * configured): whether it is here, and its download, once asked for. */
  local_model: {
    reference: string;
    downloaded: boolean;
    /** Its size in bytes, once the hub said; null before, or when the hub cannot be reached. */
    size: number | null;
    download: IDownload | null;
  } | null;
  execution: 'auto' | 'ask';
  max_steps: number;
  kernel: { name: string | null; sandboxed: boolean; problem: string | null };
  /** The agent may run code in a kernel that is no sandbox (the server's setting). */
  allow_unsandboxed: boolean;
  /** The model may be chosen in the panel (the server's setting). */
  allow_model_setup: boolean;
}

/** What `GET conversation?path=` answers: the notebook's thread, as the model sees it. */
export interface IConversation {
  id: string;
  path: string;
  /** The person's requests the model still sees, oldest first. */
  requests: string[];
  dropped_requests: number;
  messages: Record<string, unknown>[];
  tokens_estimate: number;
}

/** What `GET allowed-tools?path=` answers: the MCP tools allowed always on the notebook. */
export interface IAllowedTools {
  path: string;
  /** As `{server}__{tool}`, sorted. */
  tools: string[];
}

/** What `PUT model` saves on the server: the model the agent uses from then on. */
export interface IModelSettings {
  /** A model string: `openai:NAME`, `llama-cpp:/path/model.gguf`; '' for the server's own. */
  model: string;
  base_url?: string;
  /** Omitted or null: the key saved before stays; '' removes it. */
  api_key?: string | null;
}

/** A model download the person asked for. */
export interface IDownload {
  reference: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  /** Bytes so far, and in all (0 until the hub has said). */
  done: number;
  total: number;
  error: string | null;
}

/** The key of the cell and notebook metadata the agent writes. */
export const METADATA_KEY = 'notebook_agent';

/** A cell's provenance, in its metadata under METADATA_KEY. */
export interface ICellProvenance {
  run_id: string;
  model: string;
  state: 'proposed' | 'accepted';
}
