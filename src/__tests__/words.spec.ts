import { TranslationBundle } from '@jupyterlab/translation';

import { Doing, firstLine } from '../model/runActivity';
import { activityText, cellName } from '../words';

/** A translation that marks what went through it, to find a sentence that did not. */
const marking = {
  __: (text: string, ...args: unknown[]) =>
    `«${text.replace(/%(\d)/g, (_, n: string) => String(args[Number(n) - 1]))}»`
} as unknown as TranslationBundle;

const everything: Doing[] = [
  'starting',
  'thinking',
  'writing',
  'running',
  'awaiting-accept',
  'awaiting-kernel',
  'running-code',
  'inspecting',
  'restarting',
  'finishing'
];

describe('the words of the panel', () => {
  it('says each activity through the translation', () => {
    for (const doing of everything) {
      const text = activityText(marking, { doing, cell: 'x = 1' });
      expect(text).toMatch(/^«.*»$/);
    }
    expect(activityText(marking, { doing: 'running', cell: 'x = 1' })).toBe(
      '«Running «“x = 1”»…»'
    );
  });

  it('names a cell by its first line with text, quoted the translation’s way', () => {
    expect(cellName(marking, firstLine('\n  import numpy as np\nx = 1'))).toBe(
      '«“import numpy as np”»'
    );
    expect(cellName(marking, firstLine('   \n'))).toBe('«a cell»');
    expect(firstLine('y'.repeat(60))).toBe(`${'y'.repeat(39)}…`);
  });
});
