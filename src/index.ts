import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';

import { AgentStatus } from './model/agentStatus';
import { AgentAPI } from './model/api';
import { METADATA_KEY } from './model/events';
import { sandboxByDefault } from './model/kernels';
import { downloadLocalModel } from './model/localModel';
import {
  askForInstruction,
  ProposedCellMarker
} from './notebook/proposedCells';
import { NotebookSession } from './notebookSession';
import { AgentPanel, IPanelContext } from './panel';

const PLUGIN_ID = 'jupyter-notebook-agent:plugin';

/** The commands take no arguments. */
const NO_ARGS = { args: { type: 'object' as const, properties: {} } };

/** The agent's icon: a spark over a notebook page. */
export const agentIcon = new LabIcon({
  name: 'jupyter-notebook-agent:agent',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M6 2h9l5 5v15H6V2zm2 2v16h10V8h-4V4H8z"/>' +
    '<path d="M11 10l1 2.5 2.5 1-2.5 1-1 2.5-1-2.5L7.5 13.5l2.5-1z"/></g></svg>'
});

export namespace CommandIDs {
  export const openPanel = 'notebook-agent:open-panel';
  export const acceptCell = 'notebook-agent:accept-cell';
  export const rejectCell = 'notebook-agent:reject-cell';
  export const regenerateCell = 'notebook-agent:regenerate-cell';
  export const acceptAll = 'notebook-agent:accept-all';
  export const rejectAll = 'notebook-agent:reject-all';
  export const stop = 'notebook-agent:stop';
}

/**
 * The side panel, the marking of proposed cells in notebooks, and their commands.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'An AI agent that writes and runs cells in your Jupyter notebooks, in a sandboxed kernel.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ISettingRegistry, ICommandPalette, ITranslator],
  activate: async (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): Promise<void> => {
    const trans = (translator ?? nullTranslator).load('jupyter_notebook_agent');
    const api = new AgentAPI(app.serviceManager.serverSettings);
    const sessions = new Map<NotebookPanel, NotebookSession>();
    const sessionChanged = new Signal<unknown, void>(tracker);
    const status = new AgentStatus();

    const context: IPanelContext = {
      get session() {
        const panel = tracker.currentWidget;
        return panel ? (sessions.get(panel) ?? null) : null;
      },
      sessionChanged,
      trans,
      status,
      attempt(what: string, action: () => Promise<unknown> | undefined) {
        return action()?.catch(error => context.reportError(what, error));
      },
      reportError(what: string, error: unknown) {
        const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
        console.error(message);
        Notification.error(message, { autoClose: 8000 });
      },
      openSettings() {
        void app.commands.execute('settingeditor:open', {
          query: 'Notebook Agent'
        });
      },
      async saveModel(settings) {
        status.set(await api.saveModel(settings));
      },
      endpointModels(baseUrl, apiKey) {
        return api.endpointModels(baseUrl, apiKey);
      },
      cancelDownload() {
        // The download's loop sees it end and brings the status up to date.
        api
          .cancelDownload()
          .catch(error =>
            context.reportError(
              trans.__('Could not cancel the download'),
              error
            )
          );
      },
      downloadLocalModel() {
        downloadLocalModel(api, download => status.downloadProgress(download))
          .then(answer => status.set(answer))
          .catch(error =>
            context.reportError(trans.__('Could not download the model'), error)
          );
      }
    };

    const panel = new AgentPanel(context, rendermime);
    panel.title.icon = agentIcon;
    let side: 'left' | 'right' = 'right';

    if (settingRegistry) {
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        const read = () => {
          status.readSettings(settings);
          side = settings.get('panelSide').composite as 'left' | 'right';
        };
        read();
        settings.changed.connect(read);
      } catch (error) {
        console.error('Could not load the notebook agent settings.', error);
      }
    }
    app.shell.add(panel, side, { rank: 600 });

    api
      .status()
      .then(answer => {
        status.set(answer);
        // A download started before this page loaded: follow it (asking again joins it).
        if (answer.local_model?.download?.state === 'running') {
          context.downloadLocalModel();
        }
      })
      .catch(error => status.fail(error));

    tracker.widgetAdded.connect((_, notebook) => {
      // Before the notebook loads: one without kernel metadata then starts the sandbox.
      const sandbox = sandboxByDefault(app.serviceManager.kernelspecs.specs);
      const preference = notebook.sessionContext.kernelPreference;
      if (sandbox && !preference.name) {
        notebook.sessionContext.kernelPreference = {
          ...preference,
          name: sandbox
        };
      }
      const session = new NotebookSession(
        notebook,
        api,
        () => status.mcpServers
      );
      sessions.set(notebook, session);
      // Reject removes at once; the notification lets the person take it back.
      session.cellsRejected.connect((_, cells) =>
        Notification.info(
          trans._n('Cell rejected.', '%1 cells rejected.', cells.length),
          {
            autoClose: 10_000,
            actions: [
              {
                label: trans.__('Undo'),
                callback: () =>
                  session.canUndoReject(cells)
                    ? void context.attempt(trans.__('Could not undo'), () =>
                        session.undoReject(cells)
                      )
                    : context.reportError(
                        trans.__('Could not undo'),
                        trans.__(
                          'The agent has started another request since: the rejected cells cannot come back.'
                        )
                      )
              }
            ]
          }
        )
      );
      notebook.disposed.connect(() => sessions.delete(notebook));
      notebook.context.pathChanged.connect(() => sessionChanged.emit());
      void notebook.context.ready.then(() => {
        const marker = new ProposedCellMarker(
          notebook,
          {
            accept: cellId =>
              context.attempt(trans.__('Could not accept'), () =>
                session.accept(cellId)
              ),
            reject: cellId =>
              context.attempt(trans.__('Could not reject'), () =>
                session.reject(cellId)
              ),
            regenerate: (cellId, instruction) =>
              context.attempt(trans.__('Could not regenerate'), () =>
                session.regenerate(cellId, instruction)
              ),
            earlierSource: cellId => session.earlierSource(cellId)
          },
          translator ?? nullTranslator
        );
        notebook.disposed.connect(() => marker.dispose());
        return session
          .resume()
          .catch(error =>
            context.reportError(
              trans.__('Could not find the runs of this notebook'),
              error
            )
          );
      });
      sessionChanged.emit();
    });
    tracker.currentChanged.connect(() => sessionChanged.emit());

    /** The agent cell the person is on, in the notebook in focus. */
    const activeAgentCell = (): {
      session: NotebookSession;
      cellId: string;
    } | null => {
      const session = context.session;
      const cell = tracker.activeCell;
      if (!session || !cell || !cell.model.getMetadata(METADATA_KEY)) {
        return null;
      }
      return { session, cellId: cell.model.id };
    };
    const hasRun = () => !!context.session?.run;
    /** A command on the agent cell the person is on. */
    const cellCommand = (
      label: string,
      act: (session: NotebookSession, cellId: string) => unknown
    ) => ({
      label,
      describedBy: NO_ARGS,
      isEnabled: () => activeAgentCell() !== null,
      execute: () => {
        const found = activeAgentCell();
        return found ? act(found.session, found.cellId) : undefined;
      }
    });

    app.commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open the Notebook Agent panel'),
      describedBy: NO_ARGS,
      icon: agentIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(
      CommandIDs.acceptCell,
      cellCommand(trans.__('Accept the proposed cell'), (session, cellId) =>
        session.accept(cellId)
      )
    );
    app.commands.addCommand(
      CommandIDs.rejectCell,
      cellCommand(trans.__('Reject the proposed cell'), (session, cellId) =>
        session.reject(cellId)
      )
    );
    app.commands.addCommand(
      CommandIDs.regenerateCell,
      cellCommand(
        trans.__('Regenerate the proposed cell…'),
        async (session, cellId) => {
          const instruction = await askForInstruction(trans);
          if (instruction !== null) {
            await session.regenerate(cellId, instruction);
          }
        }
      )
    );
    app.commands.addCommand(CommandIDs.acceptAll, {
      label: trans.__('Accept all proposed cells'),
      describedBy: NO_ARGS,
      isEnabled: hasRun,
      execute: () => context.session?.acceptAll()
    });
    app.commands.addCommand(CommandIDs.rejectAll, {
      label: trans.__('Reject all proposed cells'),
      describedBy: NO_ARGS,
      isEnabled: hasRun,
      execute: () => context.session?.rejectAll()
    });
    app.commands.addCommand(CommandIDs.stop, {
      label: trans.__('Stop the agent'),
      describedBy: NO_ARGS,
      isEnabled: () => context.session?.run?.running ?? false,
      execute: () => context.session?.stop()
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: trans.__('Notebook Agent') });
      }
    }
  }
};

export default plugin;
