"""Print per-kind / per-size tables (markdown) from JSON files of ``refseg-eval --by --json``.

python tools/breakdown_table.py runs/table1/shipped.json
python tools/breakdown_table.py --by kind before=runs/a.json after=runs/b.json

One file: prec@0.5, mean IoU, overall IoU (in %) and samples per group. Several (``name=path``,
or the file's stem as the name): prec@0.5 and mean IoU of each side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refseg_model.breakdown import GROUPINGS, TITLES, markdown_group_table


def tables(runs: dict[str, dict], by: list[str] | None = None) -> str:
    """Return one markdown table per grouping found in ``runs`` (name -> eval JSON), or ``by``."""
    groupings = by or [g for g in GROUPINGS if any(f"by_{g}" in m for m in runs.values())]
    if not groupings:
        raise ValueError("no by_kind / by_strategy / by_size section: run refseg-eval with --by")
    out = []
    for g in groupings:
        sections = {name: m[f"by_{g}"] for name, m in runs.items() if f"by_{g}" in m}
        if not sections:
            raise ValueError(f"no run has a by_{g} section")
        out.append(f"**By {TITLES[g]}**\n\n{markdown_group_table(g, sections)}")
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables; return 2 with a message on a missing or malformed file."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="[NAME=]JSON")
    p.add_argument("--by", action="append", choices=GROUPINGS)
    args = p.parse_args(argv)
    runs = {}
    try:
        for arg in args.runs:
            name, sep, path = arg.partition("=")
            path = Path(path if sep else arg)
            runs[name if sep else path.stem] = json.loads(path.read_text(encoding="utf-8"))
        print(tables(runs, args.by))
    except (OSError, ValueError, KeyError) as exc:
        print(f"breakdown_table: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
