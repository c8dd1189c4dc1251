/** One line of a diff: kept, or only in the text before, or only in the text after. */
export interface IDiffLine {
  kind: 'same' | 'removed' | 'added';
  text: string;
}

/** Past this many line pairs, a diff says "all of it changed" rather than take long. */
const MAX_PAIRS = 1_000_000;

/**
 * The lines of `after` against those of `before` (a longest common subsequence): what a
 * rewrite of a cell changed, for the person to review before accepting it.
 */
export function lineDiff(before: string, after: string): IDiffLine[] {
  const old = before.split('\n');
  const now = after.split('\n');
  if (old.length * now.length > MAX_PAIRS) {
    return [
      ...old.map(text => ({ kind: 'removed' as const, text })),
      ...now.map(text => ({ kind: 'added' as const, text }))
    ];
  }
  // common[i][j]: the longest common subsequence of old[i:] and now[j:].
  const common = Array.from({ length: old.length + 1 }, () =>
    new Array<number>(now.length + 1).fill(0)
  );
  for (let i = old.length - 1; i >= 0; i--) {
    for (let j = now.length - 1; j >= 0; j--) {
      common[i][j] =
        old[i] === now[j]
          ? common[i + 1][j + 1] + 1
          : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const lines: IDiffLine[] = [];
  let [i, j] = [0, 0];
  while (i < old.length || j < now.length) {
    if (i < old.length && j < now.length && old[i] === now[j]) {
      lines.push({ kind: 'same', text: old[i] });
      i++;
      j++;
    } else if (
      i < old.length &&
      (j === now.length || common[i + 1][j] >= common[i][j + 1])
    ) {
      lines.push({ kind: 'removed', text: old[i++] });
    } else {
      lines.push({ kind: 'added', text: now[j++] });
    }
  }
  return lines;
}
