import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { AgentStatus } from '../agentStatus';
import { IAgentStatus, IDownload } from '../events';

function serverStatus(
  localModel: IAgentStatus['local_model'] = null
): IAgentStatus {
  return {
    version: '0.1.0',
    model: {
      backend: 'openai',
      name: 'gpt-test',
      base_url: null,
      api_key_set: true,
      source: 'server',
      problem: null
    },
    local_model: localModel,
    execution: 'auto',
    max_steps: 30,
    kernel: { name: 'sandbox', sandboxed: true, problem: null },
    allow_unsandboxed: false,
    allow_model_setup: true
  };
}

const LOCAL_MODEL = {
  reference: 'org/model:file.gguf',
  downloaded: false,
  size: 1000,
  download: null
};

function download(done: number): IDownload {
  return {
    reference: LOCAL_MODEL.reference,
    state: 'running',
    done,
    total: 1000,
    error: null
  };
}

/** Settings with `user` values as the person set them, the schema's defaults composited. */
function settings(user: Record<string, unknown>): ISettingRegistry.ISettings {
  const defaults: Record<string, unknown> = {
    execution: undefined,
    maxSteps: 30,
    model: '',
    panelSide: 'right'
  };
  return {
    get: (key: string) => ({
      user: user[key],
      composite: key in user ? user[key] : defaults[key]
    })
  } as unknown as ISettingRegistry.ISettings;
}

/** Counts `changed`. */
function changes(status: AgentStatus): () => number {
  let count = 0;
  status.changed.connect(() => count++);
  return () => count;
}

describe('AgentStatus', () => {
  it('knows nothing before the server answers', () => {
    const status = new AgentStatus();
    expect(status.server).toBeNull();
    expect(status.failure).toBeNull();
    expect(status.execution).toBeUndefined();
    expect(status.maxSteps).toBeUndefined();
    expect(status.model).toBe('');
  });

  it('holds the server’s answer and tells of it', () => {
    const status = new AgentStatus();
    const changed = changes(status);
    const answer = serverStatus();
    status.set(answer);
    expect(status.server).toBe(answer);
    expect(changed()).toBe(1);
  });

  it('keeps why the server could not be asked', () => {
    const status = new AgentStatus();
    const changed = changes(status);
    status.fail(new Error('Failed to fetch'));
    expect(status.failure).toBe('Failed to fetch');
    status.fail('timed out');
    expect(status.failure).toBe('timed out');
    expect(status.server).toBeNull();
    expect(changed()).toBe(2);
  });

  it('shows a download’s progress in a new status, the old one left as it was', () => {
    const status = new AgentStatus();
    const before = serverStatus(LOCAL_MODEL);
    status.set(before);
    const changed = changes(status);

    status.downloadProgress(download(250));

    expect(status.server).not.toBe(before);
    expect(status.server?.local_model?.download).toEqual(download(250));
    expect(status.server?.local_model?.reference).toBe(LOCAL_MODEL.reference);
    expect(status.server?.model).toBe(before.model);
    expect(before.local_model?.download).toBeNull();
    expect(changed()).toBe(1);
  });

  it('ignores a download’s progress with no local model to show it on', () => {
    const status = new AgentStatus();
    const changed = changes(status);
    status.downloadProgress(download(1));
    expect(status.server).toBeNull();

    const answer = serverStatus(null);
    status.set(answer);
    status.downloadProgress(download(2));
    expect(status.server).toBe(answer);
    expect(changed()).toBe(1);
  });

  it('reads only what the person set of execution and steps, and the model', () => {
    const status = new AgentStatus();
    const changed = changes(status);

    status.readSettings(settings({}));
    expect(status.execution).toBeUndefined();
    expect(status.maxSteps).toBeUndefined();
    expect(status.model).toBe('');

    status.readSettings(
      settings({ execution: 'ask', maxSteps: 12, model: 'gpt-other' })
    );
    expect(status.execution).toBe('ask');
    expect(status.maxSteps).toBe(12);
    expect(status.model).toBe('gpt-other');
    expect(changed()).toBe(2);
  });
});
