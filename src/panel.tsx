import { Dialog, showDialog } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { NotebookSession } from './notebookSession';
import { IModelSetupContext, ModelSetup } from './modelSetup';
import { firstLine } from './model/runActivity';
import { RunModel } from './model/runModel';
import { IToolApproval } from './model/runState';
import { activityText, cellName, outcomeTitle } from './words';

/** What the panel is given to act with; the plugin wires it to the notebook tracker. */
export interface IPanelContext extends IModelSetupContext {
  /** The session of the notebook in focus, or null when no notebook is open. */
  readonly session: NotebookSession | null;
  /** Emitted when the notebook in focus changes. */
  readonly sessionChanged: ISignal<unknown, void>;
  /** Reports an error in the panel and as a notification. */
  reportError(what: string, error: unknown): void;
  /** Runs an action that asks the server; a failure is reported as `what`. The promise ends
   * when the server has answered (buttons stay disabled until then). */
  attempt(
    what: string,
    action: () => Promise<unknown> | undefined
  ): Promise<unknown> | undefined;
  openSettings(): void;
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
    this.node.setAttribute('role', 'complementary');
    this.node.setAttribute('aria-label', context.trans.__('Notebook agent'));
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

  /** Opening the panel (its icon, Ctrl+Alt+I) puts the cursor in the request box: what the
   * person types next is a request, not keys for the notebook in command mode. */
  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this.node
      .querySelector<HTMLTextAreaElement>('.jp-NotebookAgent-prompt')
      ?.focus();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.context.sessionChanged}>
        {() => (
          <UseSignal signal={this.context.status.changed}>
            {() => (
              <SessionView
                key={this.context.session?.path ?? ''}
                context={this.context}
                rendermime={this.rendermime}
                ticked={this._ticked}
              />
            )}
          </UseSignal>
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
              <KernelNotice context={context} session={session} />
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
              <Thread
                context={context}
                session={session}
                rendermime={props.rendermime}
              />
              <AllowedTools session={session} context={context} />
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
  const [settingUp, setSettingUp] = React.useState(false);
  const status = context.status.server;
  const kernel = status?.kernel;
  return (
    <div className="jp-NotebookAgent-header">
      <h2 className="jp-NotebookAgent-title">{trans.__('Notebook agent')}</h2>
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
            {status.model.problem
              ? trans.__('No model ready')
              : trans.__(
                  'Model: %1',
                  context.status.model || status.model.name
                )}
          </span>
          {status.model.problem || !status.allow_model_setup ? null : (
            <button
              className="jp-NotebookAgent-cell-link"
              aria-expanded={settingUp}
              onClick={() => setSettingUp(!settingUp)}
            >
              {settingUp ? trans.__('Keep it') : trans.__('Change')}
            </button>
          )}
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
          {context.status.failure === null
            ? trans.__('Asking the server for its status…')
            : trans.__(
                'The notebook agent server extension does not answer: %1',
                context.status.failure
              )}{' '}
          <button className="jp-mod-styled" onClick={context.openSettings}>
            {trans.__('Settings')}
          </button>
        </div>
      )}
      {status?.model.problem || settingUp ? (
        <>
          {status?.model.problem ? (
            <p className="jp-NotebookAgent-warning jp-NotebookAgent-no-model">
              {status.allow_model_setup
                ? trans.__('No model is ready: %1.', status.model.problem)
                : trans.__(
                    'No model is ready: %1. This server’s model is set in its configuration: ask its administrator.',
                    status.model.problem
                  )}
            </p>
          ) : null}
          {status?.allow_model_setup ? (
            <ModelSetup context={context} onDone={() => setSettingUp(false)} />
          ) : null}
        </>
      ) : null}
      {kernel?.problem && !kernel.sandboxed ? (
        <div className="jp-NotebookAgent-warning">{kernel.problem}</div>
      ) : null}
    </div>
  );
}

/** Asks the person to agree to something that loses their kernel's state. */
async function consent(
  context: IPanelContext,
  title: string,
  body: string,
  accept: string
): Promise<boolean> {
  const { trans } = context;
  const answer = await showDialog({
    title,
    body,
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.warnButton({ label: accept })
    ]
  });
  return answer.button.accept;
}

/** The notebook's kernel is no sandbox and the server will not run the agent's code in it:
 * says so, and switches it to the sandbox with one click (and the person's consent). */
function KernelNotice(props: {
  context: IPanelContext;
  session: NotebookSession;
}): JSX.Element | null {
  const { context, session } = props;
  const { trans } = context;
  const kernel = session.kernel;
  const sandbox = context.status.server?.kernel;
  if (
    !kernel ||
    kernel.sandboxed ||
    context.status.server?.allow_unsandboxed ||
    !sandbox?.sandboxed ||
    !sandbox.name
  ) {
    return null;
  }
  const name = sandbox.name;
  const change = async (): Promise<void> => {
    const agreed = await consent(
      context,
      trans.__('Switch to the sandbox kernel?'),
      trans.__(
        'The notebook gets a new kernel in the sandbox, so the variables of its current kernel (%1) go. Run your cells again afterwards.',
        kernel.displayName
      ),
      trans.__('Switch kernel')
    );
    if (agreed) {
      await context.attempt(trans.__('Could not switch the kernel'), () =>
        session.switchKernel(name)
      );
    }
  };
  return (
    <div className="jp-NotebookAgent-warning jp-NotebookAgent-kernel-notice">
      <p>
        {trans.__(
          'This notebook’s kernel, %1, is not sandboxed: the agent does not run code in it.',
          kernel.displayName
        )}
      </p>
      <button
        className="jp-mod-styled jp-mod-accept"
        onClick={() => void change()}
      >
        {trans.__('Switch to the sandbox kernel')}
      </button>
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
  const noModel = context.status.server?.model.problem ?? null;
  const box = React.useRef<HTMLTextAreaElement>(null);
  React.useEffect(() => {
    // The box lost the focus when it was disabled for the run: it takes it back, unless the
    // person went elsewhere meanwhile.
    const focused = document.activeElement;
    if (!busy && (focused === null || focused === document.body)) {
      box.current?.focus();
    }
  }, [busy]);
  const send = async (): Promise<void> => {
    if (!prompt.trim() || busy || noModel !== null) {
      return;
    }
    setSending(true);
    try {
      await session.start(prompt, {
        execution: context.status.execution,
        max_steps: context.status.maxSteps,
        model: context.status.model || undefined
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
        ref={box}
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
      {noModel ? (
        <p
          className="jp-NotebookAgent-send-reason"
          id="jp-NotebookAgent-send-reason"
        >
          {context.trans.__('Choose a model above to send requests.')}
        </p>
      ) : null}
      <button
        className="jp-mod-styled jp-mod-accept jp-NotebookAgent-send"
        disabled={busy || !prompt.trim() || noModel !== null}
        aria-describedby={noModel ? 'jp-NotebookAgent-send-reason' : undefined}
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
      <div
        className="jp-NotebookAgent-progress"
        title={trans.__(
          'The model answered %1 times, of at most %2 for this request',
          run.step,
          run.maxSteps
        )}
      >
        <UseSignal signal={props.ticked}>
          {() => (
            <span className="jp-NotebookAgent-elapsed">
              {formatSeconds(run.elapsedMs(Date.now()) / 1000)}
            </span>
          )}
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
        <Activity
          text={activityText(trans, run.activity)}
          cellId={run.activityCellId}
          session={session}
          trans={trans}
        />
      ) : null}
      {proposed > 0 ? (
        <div className="jp-NotebookAgent-review">
          <span>
            {trans._n('%1 proposed cell', '%1 proposed cells', proposed)}
          </span>
          <span className="jp-NotebookAgent-review-actions">
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
          </span>
        </div>
      ) : null}
      <div
        className="jp-NotebookAgent-messages"
        aria-live="polite"
        aria-busy={run.running}
      >
        {run.messages.map(message => (
          <Markdown
            key={message.step}
            text={message.text}
            rendermime={props.rendermime}
          />
        ))}
      </div>
      {run.approvals.map(approval => (
        <ToolApprovalPrompt
          key={approval.callId}
          approval={approval}
          session={session}
          context={context}
        />
      ))}
      {run.restartProposal ? (
        <RestartOffer
          reason={run.restartProposal}
          session={session}
          context={context}
        />
      ) : null}
      {run.errors.map((error, index) => (
        <div key={index} className="jp-NotebookAgent-error" role="alert">
          {error}
        </div>
      ))}
      {run.outcome?.reason === 'interrupted' && !run.running ? (
        <ContinueOffer session={session} context={context} />
      ) : null}
      {run.outcome ? (
        <div
          className={
            run.outcome.success
              ? 'jp-NotebookAgent-outcome jp-mod-success'
              : 'jp-NotebookAgent-outcome jp-mod-failure'
          }
          role="status"
        >
          <strong>{outcomeTitle(trans, run.outcome)}</strong>
          <Markdown text={run.outcome.summary} rendermime={props.rendermime} />
        </div>
      ) : null}
    </div>
  );
}

/** What the agent does now; about a cell, a link to it in the notebook. */
function Activity(props: {
  text: string;
  cellId: string | null;
  session: NotebookSession;
  trans: TranslationBundle;
}): JSX.Element {
  const { text, cellId, session, trans } = props;
  return (
    <div className="jp-NotebookAgent-activity">
      {cellId === null ? (
        text
      ) : (
        <button
          className="jp-NotebookAgent-cell-link"
          title={trans.__('Show the cell in the notebook')}
          onClick={() => void session.showCell(cellId)}
        >
          {text}
        </button>
      )}
    </div>
  );
}

/** A call of one of the person's MCP tools waits for them: what it would do, and their say. */
function ToolApprovalPrompt(props: {
  approval: IToolApproval;
  session: NotebookSession;
  context: IPanelContext;
}): JSX.Element {
  const { approval, session, context } = props;
  const { trans } = context;
  const decide = (decision: 'approve' | 'always' | 'deny') =>
    void context.attempt(trans.__('Could not answer the tool call'), () =>
      session.decideToolCall(approval.callId, decision)
    );
  return (
    <div
      className="jp-NotebookAgent-warning jp-NotebookAgent-tool-approval"
      role="alertdialog"
      aria-label={trans.__('Allow the tool %1?', approval.tool)}
    >
      <p>
        {trans.__(
          'The agent wants to call %1 of the MCP server %2 with:',
          approval.tool,
          approval.server
        )}
      </p>
      <pre className="jp-NotebookAgent-tool-arguments">
        {JSON.stringify(approval.arguments, null, 2)}
      </pre>
      <span className="jp-NotebookAgent-review-actions">
        <button
          className="jp-mod-styled jp-mod-accept"
          onClick={() => decide('approve')}
        >
          {trans.__('Allow')}
        </button>
        <button className="jp-mod-styled" onClick={() => decide('always')}>
          {trans.__('Always allow this tool')}
        </button>
        <button
          className="jp-mod-styled jp-mod-reject"
          onClick={() => decide('deny')}
        >
          {trans.__('Deny')}
        </button>
      </span>
    </div>
  );
}

/** The agent would restart the kernel (or undo a rejected cell's effects): only the person
 * may, and this is how. */
function RestartOffer(props: {
  reason: string;
  session: NotebookSession;
  context: IPanelContext;
}): JSX.Element {
  const { session, context } = props;
  const { trans } = context;
  const restart = async (): Promise<void> => {
    const agreed = await consent(
      context,
      trans.__('Restart the kernel?'),
      trans.__(
        'All variables go; then every code cell but the proposed ones runs again, top to bottom.'
      ),
      trans.__('Restart and run')
    );
    if (agreed) {
      await context.attempt(trans.__('Could not restart the kernel'), () =>
        session.restartAndRunAccepted()
      );
    }
  };
  return (
    <div className="jp-NotebookAgent-warning jp-NotebookAgent-restart-offer">
      <p>
        {trans.__(
          'The kernel is yours, so the agent did not restart it (%1): what it ran remains in the kernel.',
          props.reason
        )}
      </p>
      <button className="jp-mod-styled" onClick={() => void restart()}>
        {trans.__('Restart the kernel and run the accepted cells again')}
      </button>
    </div>
  );
}

/** The run stopped with its server: it can go on, and the person says whether the cells that
 * ran before run again first (the kernel may have started afresh, and it is theirs). */
function ContinueOffer(props: {
  session: NotebookSession;
  context: IPanelContext;
}): JSX.Element {
  const { session, context } = props;
  const { trans } = context;
  const goOn = async (): Promise<void> => {
    const again = trans.__('Run the cells again, then continue');
    const answer = await showDialog({
      title: trans.__('Continue the run?'),
      body: trans.__(
        "The agent goes on where it stopped. The kernel may have started afresh since, without the variables the run made: the notebook's code cells (not the proposed ones) can run again first, in the kernel as it is."
      ),
      buttons: [
        Dialog.cancelButton({ label: trans.__('Cancel') }),
        Dialog.okButton({ label: trans.__('Continue') }),
        Dialog.warnButton({ label: again })
      ]
    });
    if (answer.button.accept) {
      await context.attempt(trans.__('Could not continue the run'), () =>
        session.continueRun(answer.button.label === again)
      );
    }
  };
  return (
    <div className="jp-NotebookAgent-warning jp-NotebookAgent-continue-offer">
      <p>
        {trans.__(
          'The server stopped while the agent was working. Its cells are kept; you can still accept or reject them.'
        )}
      </p>
      <button className="jp-mod-styled" onClick={() => void goOn()}>
        {trans.__('Continue')}
      </button>
    </div>
  );
}

/** The notebook's conversation: each earlier request the agent still remembers, what came of
 * it and the cells it wrote; and a way to start afresh. */
function Thread(props: {
  context: IPanelContext;
  session: NotebookSession;
  rendermime: IRenderMimeRegistry;
}): JSX.Element | null {
  const { context, session } = props;
  const { trans } = context;
  const thread = session.thread;
  if (thread.length === 0 && !session.run) {
    return null;
  }
  return (
    <div className="jp-NotebookAgent-thread">
      <div className="jp-NotebookAgent-thread-header">
        <span>
          {trans._n(
            'The agent remembers %1 earlier request',
            'The agent remembers %1 earlier requests',
            thread.length
          )}
          {session.droppedRequests > 0
            ? trans._n(
                ' (the oldest in a sentence, to keep within its context)',
                ' (the %1 oldest in a sentence each, to keep within its context)',
                session.droppedRequests
              )
            : ''}
        </span>
        <button
          className="jp-mod-styled"
          disabled={session.run?.running ?? false}
          onClick={() =>
            void context.attempt(
              trans.__('Could not start a new conversation'),
              () => session.newConversation()
            )
          }
        >
          {trans.__('New conversation')}
        </button>
      </div>
      <ol className="jp-NotebookAgent-thread-requests">
        {thread.map(run => (
          <li key={run.id}>
            <div className="jp-NotebookAgent-thread-prompt">{run.prompt}</div>
            {run.messages.map((message, index) => (
              <Markdown
                key={index}
                text={message}
                rendermime={props.rendermime}
              />
            ))}
            <div className="jp-NotebookAgent-thread-outcome">
              {run.outcome?.success ? '✓ ' : '✗ '}
              {run.outcome?.summary}
            </div>
            <div className="jp-NotebookAgent-thread-meta">
              {run.cells
                .filter(cell => cell.state !== 'rejected')
                .map(cell => ({
                  ...cell,
                  source: session.cellSource(cell.cell_id)
                }))
                .filter(cell => cell.source !== null)
                .map(cell => (
                  <button
                    key={cell.cell_id}
                    className="jp-NotebookAgent-cell-link"
                    title={trans.__('Show the cell in the notebook')}
                    onClick={() => void session.showCell(cell.cell_id)}
                  >
                    {cellName(trans, firstLine(cell.source ?? ''))}
                  </button>
                ))}
              <span>
                {trans._n(
                  '%1 token',
                  '%1 tokens',
                  run.usage.prompt_tokens + run.usage.completion_tokens
                )}
              </span>
            </div>
          </li>
        ))}
      </ol>
    </div>
  );
}

/** The MCP tools whose calls on this notebook run without asking, since the person allowed
 * them always; each "always" can be taken back. */
function AllowedTools(props: {
  session: NotebookSession;
  context: IPanelContext;
}): JSX.Element | null {
  const { session, context } = props;
  const { trans } = context;
  const tools = session.allowedTools;
  if (tools.length === 0) {
    return null;
  }
  return (
    <details className="jp-NotebookAgent-allowed-tools">
      <summary>
        {trans._n(
          '%1 MCP tool runs without asking on this notebook',
          '%1 MCP tools run without asking on this notebook',
          tools.length
        )}
      </summary>
      <ul>
        {tools.map(tool => (
          <li key={tool}>
            <code>{tool}</code>{' '}
            <button
              className="jp-mod-styled"
              aria-label={trans.__('Ask again before %1 runs', tool)}
              onClick={() =>
                void context.attempt(
                  trans.__('Could not take back the permission of %1', tool),
                  () => session.askAgain(tool)
                )
              }
            >
              {trans.__('Ask again')}
            </button>
          </li>
        ))}
      </ul>
    </details>
  );
}

function PastRuns(props: {
  session: NotebookSession;
  trans: TranslationBundle;
}): JSX.Element | null {
  const current = props.session.run?.runId;
  const thread = new Set(props.session.thread.map(run => run.id));
  const finished = props.session.pastRuns.filter(
    run => run.outcome && run.id !== current && !thread.has(run.id)
  );
  if (finished.length === 0) {
    return null;
  }
  return (
    <details className="jp-NotebookAgent-history">
      <summary>
        {props.trans.__(
          'Earlier conversations on this notebook (%1 requests)',
          finished.length
        )}
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
