"""Print Table 1 (markdown) from the JSON files that ``refseg-eval --json`` wrote.

python tools/results_table.py runs/table1
"""

import json
import sys
from pathlib import Path

ROWS = [('whole_image', 'whole image'), ('per_word_average', 'per-word average'),
        ('per_word_intersection', 'per-word intersection'), ('per_word_union', 'per-word union'),
        ('ours_lowres', 'ours, low resolution (coarse map, bilinear)'),
        ('shipped', 'ours, high resolution: shipped default (`tabletop.pt`)')]
KEYS = ['prec@0.5', 'prec@0.6', 'prec@0.7', 'prec@0.8', 'prec@0.9', 'overall_iou', 'mean_iou']


def table(folder: Path) -> str:
    """Return the markdown table of the rows whose JSON file exists in ``folder``."""
    lines = ['| method | ' + ' | '.join(KEYS) + ' | samples |',
             '|---|' + '---:|' * (len(KEYS) + 1)]
    for stem, name in ROWS:
        path = folder / f'{stem}.json'
        if path.exists():
            m = json.loads(path.read_text())
            cells = [f'{100 * m[k]:.2f}' for k in KEYS] + [str(m['num_samples'])]
            lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else 'runs/table1')))
