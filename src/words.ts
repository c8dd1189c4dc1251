import { TranslationBundle } from '@jupyterlab/translation';

import { IActivity } from './model/runActivity';
import { IRunOutcome } from './model/runState';

/** A cell as the person knows it, by its first line (`firstLine`); "a cell" while empty. */
export function cellName(
  trans: TranslationBundle,
  line: string | null
): string {
  return line === null ? trans.__('a cell') : trans.__('“%1”', line);
}

/** What the run is doing, in a short sentence. */
export function activityText(
  trans: TranslationBundle,
  activity: IActivity
): string {
  const cell = cellName(trans, activity.cell);
  switch (activity.doing) {
    case 'starting':
      return trans.__('Starting…');
    case 'thinking':
      return trans.__('Thinking…');
    case 'writing':
      return trans.__('Writing %1…', cell);
    case 'running':
      return trans.__('Running %1…', cell);
    case 'awaiting-accept':
      return trans.__('Waiting for you to accept %1', cell);
    case 'awaiting-kernel':
      return trans.__('Waiting for your cell to finish…');
    case 'running-code':
      return trans.__('Running code…');
    case 'inspecting':
      return trans.__('Looking at a variable…');
    case 'restarting':
      return trans.__('Restarting the kernel…');
    case 'finishing':
      return trans.__('Finishing…');
  }
}

/** How a run ended, in the person's words (the outcome's reason is a code). */
export function outcomeTitle(
  trans: TranslationBundle,
  outcome: IRunOutcome
): string {
  switch (outcome.reason) {
    case 'completed':
      return trans.__('Done');
    case 'gave_up':
      return trans.__('The agent could not finish');
    case 'max_steps':
      return trans.__('The agent used all its steps');
    case 'time_limit':
      return trans.__('The run reached its time limit');
    case 'context_budget':
      return trans.__('The conversation grew too long for the model');
    case 'format_errors':
      return trans.__(
        'The model kept answering in a form the agent cannot use'
      );
    case 'model_error':
      return trans.__('The model could not answer');
    case 'kernel_error':
      return trans.__('The kernel could not run the code');
    case 'stopped':
      return trans.__('Stopped');
    case 'interrupted':
      return trans.__('Interrupted: the server stopped');
    default:
      return trans.__('Ended');
  }
}
