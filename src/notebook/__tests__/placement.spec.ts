import { placement } from '../placement';
// The cases the server's rule passes too (tests/test_placement.py).
import placements from './placements.json';

describe('placement', () => {
  it.each(placements.cases)(
    'places a cell after $after at $index among $ids at $expected',
    ({ ids, after, index, expected }) => {
      expect(placement(ids, after, index)).toBe(expected);
    }
  );
});
