import { lineDiff } from '../lineDiff';

describe('lineDiff', () => {
  it('keeps the lines both have and marks the rest', () => {
    expect(
      lineDiff(
        'import pandas as pd\ndf.plot()\nplt.show()',
        'import pandas as pd\ndf.plot(logy=True)\nplt.show()'
      )
    ).toEqual([
      { kind: 'same', text: 'import pandas as pd' },
      { kind: 'removed', text: 'df.plot()' },
      { kind: 'added', text: 'df.plot(logy=True)' },
      { kind: 'same', text: 'plt.show()' }
    ]);
  });

  it('is all kept for the same text, and all added from nothing', () => {
    expect(lineDiff('a\nb', 'a\nb').every(line => line.kind === 'same')).toBe(
      true
    );
    expect(lineDiff('', 'x')).toEqual([
      { kind: 'removed', text: '' },
      { kind: 'added', text: 'x' }
    ]);
  });

  it('says all of it changed past its size limit, at once', () => {
    const before = Array.from({ length: 2000 }, (_, i) => `a${i}`).join('\n');
    const after = Array.from({ length: 2000 }, (_, i) => `b${i}`).join('\n');
    const lines = lineDiff(before, after);
    expect(lines.filter(line => line.kind === 'removed')).toHaveLength(2000);
    expect(lines.filter(line => line.kind === 'added')).toHaveLength(2000);
  });
});
