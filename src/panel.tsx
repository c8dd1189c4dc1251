import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { NotebookSession } from './controller';
import { IAgentStatus } from './model/events';
import { RunModel } from './model/runModel';

/** What the panel is given to act with; the plugin wires it to the notebook tracker. */
export interface IPanelContext {
  /** The session of the notebook in focus, or null when no notebook is open. */
  readonly session: NotebookSession | null;
  /** Emitted when the notebook in focus changes. */
  readonly sessionChanged: ISignal<unknown, void>;
  readonly trans: TranslationBundle;
  readonly status: IAgentStatus | null;
  readonly statusProblem: string | null;
  readonly execution: 'auto' | 'ask';
  readonly maxSteps: number;
  readonly model: string;
  /** Reports an error in the panel and as a notification. */
  reportError(what: string, error: unknown): void;
  /** Runs an action that asks the server; a failure is reported as `what`. The promise ends
   * when the server has answered (buttons stay disabled until then). */
  attempt(
    what: string,
    action: () => Promise<unknown> | undefined
  ): Promise<unknown> | undefined;
  openSettings(): void;
  /** Downloads the server's local model (the person asked, with the button that says so). */
  downloadLocalModel(): void;
}

/** The side panel: ask, watch the run, stop it, review its cells, see past runs. */
export class AgentPanel extends ReactWidget {
  constructor(
    private readonly context: IPanelContext,
    private readonly rendermime: IRenderMimeRegistry
  ) {
    super();
    this.addClass('jp-NotebookAgent-panel');
    this.id = 'jp-notebook-agent-panel';
    this.title.caption = context.trans.__('Notebook agent');
  }

  /** Emitted every second while a run goes on, so the elapsed time ticks. */
  get ticked(): ISignal<this, void> {
    return this._ticked;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._timer = window.setInterval(() => this._ticked.emit(), 1000);
  }

  protected onBeforeDetach(msg: Message): void {
    window.clearInterval(this._timer);
    super.onBeforeDetach(msg);
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.context.sessionChanged}>
        {() => (
          <SessionView
            key={this.context.session?.path ?? ''}
            context={this.context}
            rendermime={this.rendermime}
            ticked={this._ticked}
          />
        )}
      </UseSignal>
    );
  }

  private _timer = 0;
  private _ticked = new Signal<this, void>(this);
}

function SessionView(props: {
  context: IPanelContext;
  rendermime: IRenderMimeRegistry;
  ticked: ISignal<AgentPanel, void>;
}): JSX.Element {
  const { context } = props;
  const { trans } = context;
  const session = context.session;
  return (
    <div className="jp-NotebookAgent-body">
      <Header context={context} />
      {session === null ? (
        <p className="jp-NotebookAgent-empty">
          {trans.__(
            'Open a notebook, then ask the agent for what you need: it writes cells into that notebook and runs them in a sandboxed kernel.'
          )}
        </p>
      ) : (
        <UseSignal signal={session.changed}>
          {() => (
            <>
              <RequestBox context={context} session={session} />
              {session.run ? (
                <RunView
                  run={session.run}
                  session={session}
                  context={context}
                  rendermime={props.rendermime}
                  ticked={props.ticked}
                />
              ) : (
                <p className="jp-NotebookAgent-empty">
                  {trans.__(
                    'Describe a task, e.g. “load sales.csv and plot revenue by month”. Cells the agent proposes appear in the notebook, where you accept, reject or regenerate each one.'
                  )}
                </p>
              )}
              <PastRuns session={session} trans={trans} />
            </>
          )}
        </UseSignal>
      )}
    </div>
  );
}

function Header(props: { context: IPanelContext }): JSX.Element {
  const { context } = props;
  const { trans } = context;
  const status = context.status;
  const kernel = status?.kernel;
  return (
    <div className="jp-NotebookAgent-header">
      <div className="jp-NotebookAgent-target">
        {context.session
          ? trans.__('Notebook: %1', context.session.path)
          : trans.__('No notebook open')}
      </div>
      {status ? (
        <div className="jp-NotebookAgent-status">
          <span
            className="jp-NotebookAgent-model"
            title={trans.__('The model in use')}
          >
            {trans.__('Model: %1', context.model || status.model.name)}
          </span>
          <span
            className={
              kernel?.sandboxed
                ? 'jp-NotebookAgent-sandbox-on'
                : 'jp-NotebookAgent-sandbox-off'
            }
            title={kernel?.problem ?? ''}
          >
            {kernel?.sandboxed
              ? trans.__('Sandbox on')
              : kernel?.name
                ? trans.__('Sandbox off: code runs on this machine')
                : trans.__('No sandbox: code cannot run')}
          </span>
        </div>
      ) : (
        <div className="jp-NotebookAgent-error">
          {context.statusProblem ??
            trans.__('Asking the server for its status…')}{' '}
          <button className="jp-mod-styled" onClick={context.openSettings}>
            {trans.__('Settings')}
          </button>
        </div>
      )}
      {status?.model.problem &&
      status.local_model &&
      !status.local_model.downloaded ? (
        <LocalModelOffer context={context} />
      ) : status?.model.problem ? (
        <div className="jp-NotebookAgent-warning jp-NotebookAgent-no-model">
          {trans.__(
            "No model is ready: %1. Configure one in the server's settings, or pick another model of its endpoint in",
            status.model.problem
          )}{' '}
          <button className="jp-mod-styled" onClick={context.openSettings}>
            {trans.__('Settings')}
          </button>
        </div>
      ) : null}
      {kernel?.problem && !kernel.sandboxed ? (
        <div className="jp-NotebookAgent-warning">{kernel.problem}</div>
      ) : null}
    </div>
  );
}

/** With no model ready, the local one the server would use, downloaded only when asked. */
function LocalModelOffer(props: {
  context: IPanelContext;
}): JSX.Element | null {
  const { context } = props;
  const { trans } = context;
  const local = context.status?.local_model;
  if (!local) {
    return null;
  }
  const download = local.download;
  const megabytes = (bytes: number) => (bytes / 1e6).toFixed(0);
  return (
    <div className="jp-NotebookAgent-warning jp-NotebookAgent-local-model">
      <p>
        {trans.__(
          'No model is configured. The agent can run a local model on this machine, so your data stays here: %1. It is downloaded once, when you ask.',
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
              : trans.__('Starting the download…')}
          </span>
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
        <p className="jp-NotebookAgent-error">{download.error}</p>
      ) : null}
      <p>
        {trans.__('Or configure a model in the server’s settings.')}{' '}
        <button className="jp-mod-styled" onClick={context.openSettings}>
          {trans.__('Settings')}
        </button>
      </p>
    </div>
  );
}

function RequestBox(props: {
  context: IPanelContext;
  session: NotebookSession;
}): JSX.Element {
  const { context, session } = props;
  const [prompt, setPrompt] = React.useState('');
  const [sending, setSending] = React.useState(false);
  const busy = sending || (session.run?.running ?? false);
  const send = async (): Promise<void> => {
    if (!prompt.trim() || busy) {
      return;
    }
    setSending(true);
    try {
      await session.start(prompt, {
        execution: context.execution,
        max_steps: context.maxSteps,
        model: context.model || undefined
      });
      setPrompt('');
    } catch (error) {
      context.reportError(context.trans.__('Could not start the run'), error);
    } finally {
      setSending(false);
    }
  };
  return (
    <div className="jp-NotebookAgent-request">
      <textarea
        className="jp-NotebookAgent-prompt"
        aria-label={context.trans.__('Request to the agent')}
        placeholder={context.trans.__(
          'Ask the agent… (Enter sends, Shift+Enter for a new line)'
        )}
        value={prompt}
        rows={3}
        disabled={busy}
        onChange={event => setPrompt(event.target.value)}
        onKeyDown={event => {
          if (event.key === 'Enter' && !event.shiftKey) {
            event.preventDefault();
            void send();
          }
        }}
      />
      <button
        className="jp-mod-styled jp-mod-accept jp-NotebookAgent-send"
        disabled={busy || !prompt.trim()}
        onClick={() => void send()}
      >
        {context.trans.__('Send')}
      </button>
    </div>
  );
}

function RunView(props: {
  run: RunModel;
  session: NotebookSession;
  context: IPanelContext;
  rendermime: IRenderMimeRegistry;
  ticked: ISignal<AgentPanel, void>;
}): JSX.Element {
  const { run, session, context } = props;
  const { trans } = context;
  const act = (what: string, action: () => Promise<unknown> | undefined) =>
    void context.attempt(what, action);
  const proposed = run.proposedCellIds.length;
  return (
    <div className="jp-NotebookAgent-run">
      <div className="jp-NotebookAgent-task">{run.task}</div>
      <div className="jp-NotebookAgent-progress" aria-live="polite">
        <span>{trans.__('Step %1 of %2', run.step, run.maxSteps)}</span>
        <UseSignal signal={props.ticked}>
          {() => <span>{formatSeconds(run.elapsedMs(Date.now()) / 1000)}</span>}
        </UseSignal>
        <span>{trans._n('%1 token', '%1 tokens', run.tokens)}</span>
        {run.running ? (
          <button
            className="jp-mod-styled jp-mod-warn jp-NotebookAgent-stop"
            onClick={() =>
              act(trans.__('Could not stop the run'), () => session.stop())
            }
          >
            {trans.__('Stop')}
          </button>
        ) : null}
      </div>
      {run.activity ? (
        <div className="jp-NotebookAgent-activity">{run.activity}</div>
      ) : null}
      {proposed > 0 ? (
        <div className="jp-NotebookAgent-review">
          <span>
            {trans._n('%1 proposed cell', '%1 proposed cells', proposed)}
          </span>
          <button
            className="jp-mod-styled jp-mod-accept"
            onClick={() =>
              act(trans.__('Could not accept'), () => session.acceptAll())
            }
          >
            {trans.__('Accept all')}
          </button>
          <button
            className="jp-mod-styled jp-mod-reject"
            onClick={() =>
              act(trans.__('Could not reject'), () => session.rejectAll())
            }
          >
            {trans.__('Reject all')}
          </button>
        </div>
      ) : null}
      {run.messages.map(message => (
        <Markdown
          key={message.step}
          text={message.text}
          rendermime={props.rendermime}
        />
      ))}
      {run.errors.map((error, index) => (
        <div key={index} className="jp-NotebookAgent-error">
          {error}
        </div>
      ))}
      {run.outcome ? (
        <div
          className={
            run.outcome.success
              ? 'jp-NotebookAgent-outcome jp-mod-success'
              : 'jp-NotebookAgent-outcome jp-mod-failure'
          }
        >
          <strong>
            {run.outcome.success
              ? trans.__('Done')
              : trans.__('Ended: %1', run.outcome.reason)}
          </strong>
          <Markdown text={run.outcome.summary} rendermime={props.rendermime} />
        </div>
      ) : null}
    </div>
  );
}

function PastRuns(props: {
  session: NotebookSession;
  trans: TranslationBundle;
}): JSX.Element | null {
  const current = props.session.run?.runId;
  const finished = props.session.pastRuns.filter(
    run => run.outcome && run.id !== current
  );
  if (finished.length === 0) {
    return null;
  }
  return (
    <details className="jp-NotebookAgent-history">
      <summary>
        {props.trans.__('Earlier runs on this notebook (%1)', finished.length)}
      </summary>
      <ul>
        {finished.map(run => (
          <li key={run.id} title={run.outcome?.summary}>
            {run.outcome?.success ? '✓' : '✗'} {run.prompt}
          </li>
        ))}
      </ul>
    </details>
  );
}

/** Markdown rendered by JupyterLab's own renderer, as in a markdown cell. */
function Markdown(props: {
  text: string;
  rendermime: IRenderMimeRegistry;
}): JSX.Element {
  const node = React.useRef<HTMLDivElement>(null);
  React.useEffect(() => {
    const renderer = props.rendermime.createRenderer('text/markdown');
    const model = new MimeModel({ data: { 'text/markdown': props.text } });
    void renderer.renderModel(model).then(() => {
      node.current?.replaceChildren(renderer.node);
    });
    return () => renderer.dispose();
  }, [props.text]);
  return <div className="jp-NotebookAgent-message" ref={node} />;
}

function formatSeconds(seconds: number): string {
  const whole = Math.floor(seconds);
  const minutes = Math.floor(whole / 60);
  return minutes > 0 ? `${minutes} min ${whole % 60} s` : `${whole} s`;
}
