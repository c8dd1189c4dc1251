import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { AgentStatus } from './model/agentStatus';
import { IModelSettings } from './model/events';

/** Examples in the empty fields: names, not words to translate. */
const EXAMPLE_URL = 'https://api.openai.com/v1';
const EXAMPLE_MODEL = 'gpt-4o-mini';
const EXAMPLE_FILE = '/models/model.gguf';

/** What setting up the model needs of the plugin. */
export interface IModelSetupContext {
  readonly trans: TranslationBundle;
  /** The server's status, and the person's settings for a request. */
  readonly status: AgentStatus;
  /** Saves the model on the server; rejects with the server's sentence. */
  saveModel(settings: IModelSettings): Promise<void>;
  /** The models an endpoint lists (null key: the one saved). */
  endpointModels(baseUrl: string, apiKey: string | null): Promise<string[]>;
  /** Downloads the server's local model, the person having asked. */
  downloadLocalModel(): void;
  cancelDownload(): void;
}

/**
 * Where the person picks the agent's model, saved on the server: an OpenAI-compatible endpoint
 * (its URL, its key, one of the models it lists) or a local model (the offered one, downloaded
 * when asked, or a file already on the server). A key goes to the server and never comes back:
 * the panel only knows whether one is set.
 */
export function ModelSetup(props: {
  context: IModelSetupContext;
  onDone?: () => void;
}): JSX.Element {
  const { context, onDone } = props;
  const { trans } = context;
  const model = context.status.server?.model;
  const [baseUrl, setBaseUrl] = React.useState(model?.base_url ?? '');
  const [apiKey, setApiKey] = React.useState('');
  const [name, setName] = React.useState(
    model?.backend === 'openai' ? model.name : ''
  );
  const [models, setModels] = React.useState<string[]>([]);
  const [path, setPath] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);

  /** Runs a request to the server; its failure is shown here, in its own words. */
  const ask = async (action: () => Promise<void>): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (reason) {
      setError(reason instanceof Error ? reason.message : String(reason));
    } finally {
      setBusy(false);
    }
  };
  const key = (): string | null => (apiKey === '' ? null : apiKey);
  const findModels = () =>
    ask(async () => {
      const found = await context.endpointModels(baseUrl.trim(), key());
      setModels(found);
      if (!found.includes(name)) {
        setName(found[0] ?? '');
      }
    });
  const useEndpoint = () =>
    ask(async () => {
      await context.saveModel({
        model: `openai:${name.trim()}`,
        base_url: baseUrl.trim(),
        api_key: key()
      });
      setApiKey('');
      onDone?.();
    });
  const useFile = () =>
    ask(async () => {
      await context.saveModel({ model: `llama-cpp:${path.trim()}` });
      onDone?.();
    });

  // The server keeps a key saved from the panel for its own URL alone.
  const keySaved =
    model?.source === 'panel' &&
    model.api_key_set &&
    baseUrl.trim() === (model.base_url ?? '');
  const local = context.status.server?.local_model;
  const download = local?.download;
  const megabytes = (bytes: number) => (bytes / 1e6).toFixed(0);
  return (
    <section
      className="jp-NotebookAgent-model-setup"
      aria-label={trans.__('Model setup')}
    >
      <h3>{trans.__('Choose the model the agent uses')}</h3>
      <fieldset disabled={busy}>
        <legend>{trans.__('An OpenAI-compatible endpoint')}</legend>
        <label>
          {trans.__('URL')}
          <input
            type="url"
            value={baseUrl}
            placeholder={EXAMPLE_URL}
            onChange={event => setBaseUrl(event.target.value)}
          />
        </label>
        <label>
          {trans.__('API key')}
          <input
            type="password"
            autoComplete="off"
            value={apiKey}
            placeholder={
              keySaved
                ? trans.__('set (leave empty to keep it)')
                : trans.__('not set')
            }
            onChange={event => setApiKey(event.target.value)}
          />
        </label>
        <button
          className="jp-mod-styled"
          disabled={!baseUrl.trim()}
          onClick={() => void findModels()}
        >
          {trans.__('List its models')}
        </button>
        <label>
          {trans.__('Model')}
          {models.length ? (
            <select
              value={name}
              onChange={event => setName(event.target.value)}
            >
              {models.map(each => (
                <option key={each} value={each}>
                  {each}
                </option>
              ))}
            </select>
          ) : (
            <input
              type="text"
              value={name}
              placeholder={EXAMPLE_MODEL}
              onChange={event => setName(event.target.value)}
            />
          )}
        </label>
        <button
          className="jp-mod-styled jp-mod-accept"
          disabled={!name.trim()}
          onClick={() => void useEndpoint()}
        >
          {trans.__('Use this endpoint')}
        </button>
      </fieldset>
      <fieldset disabled={busy}>
        <legend>{trans.__('A local model, on this server')}</legend>
        {local && !local.downloaded ? (
          <div className="jp-NotebookAgent-local-model">
            <p>
              {local.size
                ? trans.__(
                    '%1 (%2 MB), downloaded once: your data stays on this machine.',
                    local.reference,
                    megabytes(local.size)
                  )
                : trans.__(
                    '%1, downloaded once: your data stays on this machine.',
                    local.reference
                  )}
            </p>
            {download?.state === 'running' ? (
              <div className="jp-NotebookAgent-download">
                <progress
                  value={download.done}
                  max={download.total || undefined}
                  aria-label={trans.__('Download progress')}
                />
                <span>
                  {download.total
                    ? trans.__(
                        '%1 of %2 MB',
                        megabytes(download.done),
                        megabytes(download.total)
                      )
                    : trans.__('Asking the model hub…')}
                </span>
                <button
                  className="jp-mod-styled"
                  onClick={() => context.cancelDownload()}
                >
                  {trans.__('Cancel')}
                </button>
              </div>
            ) : (
              <button
                className="jp-mod-styled jp-mod-accept"
                onClick={() => context.downloadLocalModel()}
              >
                {trans.__('Download and use it')}
              </button>
            )}
            {download?.state === 'failed' ? (
              <p className="jp-NotebookAgent-error" role="alert">
                {download.error}
              </p>
            ) : null}
          </div>
        ) : null}
        <label>
          {trans.__('A model file (.gguf) on this server')}
          <input
            type="text"
            value={path}
            placeholder={EXAMPLE_FILE}
            onChange={event => setPath(event.target.value)}
          />
        </label>
        <button
          className="jp-mod-styled"
          disabled={!path.trim()}
          onClick={() => void useFile()}
        >
          {trans.__('Use this file')}
        </button>
      </fieldset>
      {error ? (
        <p className="jp-NotebookAgent-error" role="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}
