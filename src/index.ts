import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { requestAPI } from './handler';

/**
 * What `GET {baseUrl}notebook-agent/status` answers (the fields the frontend reads).
 */
export interface IAgentStatus {
  version: string;
  model: { backend: string; name: string; base_url: string | null };
  execution: 'auto' | 'ask';
  max_steps: number;
  kernel: { name: string | null; sandboxed: boolean; problem: string | null };
}

/**
 * The jupyter-notebook-agent frontend plugin.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-notebook-agent:plugin',
  description:
    'An AI agent that writes and runs cells in your Jupyter notebooks, in a sandboxed kernel.',
  autoStart: true,
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null
  ): void => {
    console.log('JupyterLab extension jupyter-notebook-agent is activated!');

    if (settingRegistry) {
      settingRegistry
        .load(plugin.id)
        .then(settings => {
          console.log(
            'jupyter-notebook-agent settings loaded:',
            settings.composite
          );
        })
        .catch(reason => {
          console.error(
            'Failed to load settings for jupyter-notebook-agent.',
            reason
          );
        });
    }

    requestAPI<IAgentStatus>('status', {}, app.serviceManager.serverSettings)
      .then(status => {
        console.log('jupyter-notebook-agent server status:', status);
      })
      .catch(reason => {
        console.error(
          `The jupyter_notebook_agent server extension appears to be missing or failing.\n${reason}`
        );
      });
  }
};

export default plugin;
