"""The paper's metrics broken down by group: expression kind, generator strategy, target size.

``refseg-eval --by kind --by size`` scores every sample once and adds it to its split-wide
:class:`~refseg_model.metrics.SegmentationMetrics` and to one per group:

- ``kind``: what the expression asks for (:data:`~refseg_model.synth.expressions.EXPRESSION_KINDS`:
  category, colour, colour only, size, absolute position, relation, plural / group, stuff), as the
  dataset records it (``synthetic_kinds_<split>.json``); ``unknown`` where it does not;
- ``strategy``: the generator's finer strategy behind the kind (``global``, ``corner``, ...);
- ``size``: the ground-truth area in pixels at the original image size, in bands cut at
  :data:`SIZE_EDGES` (``<2000``, ``2000-8000``, ``>=8000``).

The JSON of ``refseg-eval --json`` then holds a ``by_kind`` / ``by_strategy`` / ``by_size`` section:
``{group: {"prec@0.5": ..., "overall_iou": ..., "mean_iou": ..., "num_samples": ...}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from refseg_model.data.base import DataError, Sample, SampleSource
from refseg_model.metrics import SegmentationMetrics
from refseg_model.synth.expressions import EXPRESSION_KINDS, kind_of_strategy

GROUPINGS = ("kind", "strategy", "size")
SIZE_EDGES = (2000, 8000)
UNKNOWN = "unknown"
KIND_TITLES = {"category": "category", "colour": "colour", "colour_only": "colour only",
               "size": "size", "position": "absolute position", "relation": "relation",
               "plural": "plural / group", "stuff": "stuff",
               "absent_category": "no target: category", "absent_colour": "no target: colour",
               "absent_colour_only": "no target: colour only",
               "absent_relation": "no target: relation"}
NO_TARGET = "no target"
"""The size group of samples whose ground truth is empty (not a band of small targets)."""
TITLES = {"kind": "expression kind", "strategy": "generator strategy",
          "size": "target area (pixels)"}


def check_size_edges(edges: Sequence[int]) -> tuple[int, ...]:
    """Return ``edges`` as a tuple; raise ``ValueError`` unless they rise strictly from above 0."""
    try:
        edges = tuple(int(e) for e in edges)
    except (TypeError, ValueError):
        raise ValueError(f"size edges must be whole numbers of pixels, got {edges!r}") from None
    if not edges or edges[0] <= 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"size edges must be positive and strictly increasing, got {edges}")
    return edges


def size_bands(edges: Sequence[int] = SIZE_EDGES) -> list[str]:
    """Return the band labels of ``edges`` in order: ``<e0``, ``e0-e1``, ..., ``>=eN``."""
    edges = check_size_edges(edges)
    inner = [f"{a}-{b}" for a, b in zip(edges, edges[1:])]
    return [f"<{edges[0]}", *inner, f">={edges[-1]}"]


def size_band(area: int, edges: Sequence[int] = SIZE_EDGES) -> str:
    """Return the label of the band holding ``area`` pixels (bands are [lower, upper))."""
    labels = size_bands(edges)
    for label, edge in zip(labels, edges):
        if area < edge:
            return label
    return labels[-1]


def check_groupings(source: SampleSource, by: Sequence[str]) -> tuple[str, ...]:
    """Validate ``by`` for ``source``: known names, and kinds only where the dataset has them."""
    by = tuple(dict.fromkeys(by))
    unknown = [g for g in by if g not in GROUPINGS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown[0]!r}; choose from {', '.join(GROUPINGS)}")
    if {"kind", "strategy"} & set(by) and not source.has_expression_kinds():
        raise DataError(f"{source.name} {source.split} under {source.root} records no expression "
                        f"kinds (a synthetic dataset written by refseg-synth has them in "
                        f"synthetic_kinds_<split>.json); use --by size")
    return by


class GroupedMetrics:
    """One :class:`SegmentationMetrics` per group of each grouping in ``by``."""

    def __init__(self, source: SampleSource, by: Sequence[str],
                 size_edges: Sequence[int] = SIZE_EDGES):
        """Check ``by`` against ``source`` (see :func:`check_groupings`) and start empty."""
        self.source = source
        self.by = check_groupings(source, by)
        self.size_edges = check_size_edges(size_edges)
        self.groups: dict[str, dict[str, SegmentationMetrics]] = {g: {} for g in self.by}

    def label(self, grouping: str, sample: Sample, area: int) -> str:
        """Return the group of ``sample`` (ground-truth ``area`` pixels) under ``grouping``."""
        if grouping == "size":
            return size_band(area, self.size_edges) if area else NO_TARGET
        kind = self.source.expression_kind(sample)
        if kind is None:
            return UNKNOWN
        return kind.kind if grouping == "kind" else kind.strategy

    def add_counts(self, sample: Sample, area: int, intersection: int, union: int,
                   found: bool | None = None) -> None:
        """Add one scored sample (its I and U counts) to its group of every grouping."""
        for grouping, groups in self.groups.items():
            label = self.label(grouping, sample, area)
            groups.setdefault(label, SegmentationMetrics()).add_counts(intersection, union, found)

    def order(self, grouping: str) -> list[str]:
        """Return the groups seen under ``grouping`` in table order."""
        seen = self.groups[grouping]
        if grouping == "size":
            fixed = [*size_bands(self.size_edges), NO_TARGET]
        elif grouping == "kind":
            fixed = list(EXPRESSION_KINDS)
        else:
            fixed = []
        known = [g for g in fixed if g in seen]
        rest = sorted((g for g in seen if g not in fixed and g != UNKNOWN), key=_strategy_key)
        return known + rest + ([UNKNOWN] if UNKNOWN in seen else [])

    def to_dict(self) -> dict[str, dict[str, dict]]:
        """Return ``{"by_<grouping>": {group: metrics dict}}`` in table order."""
        return {f"by_{g}": {label: self.groups[g][label].to_dict() for label in self.order(g)}
                for g in self.by}


def _strategy_key(name: str) -> tuple[int, str]:
    """Sort strategies by their kind's place in :data:`EXPRESSION_KINDS`, then by name."""
    try:
        return EXPRESSION_KINDS.index(kind_of_strategy(name)), name
    except ValueError:
        return len(EXPRESSION_KINDS), name


def _title(grouping: str, label: str) -> str:
    return KIND_TITLES.get(label, label) if grouping == "kind" else label


def format_group_table(grouping: str, section: dict[str, dict]) -> str:
    """Return a plain-text table of one ``by_<grouping>`` section: prec@0.5, IoUs, samples."""
    lines = [f"{TITLES.get(grouping, grouping):<24}{'prec@0.5':>11}{'mean IoU':>11}"
             f"{'overall IoU':>13}{'samples':>10}{'found':>9}"]
    for label, m in section.items():
        found = f"{100 * m['found_share']:>8.1f}%" if "found_share" in m else f"{'-':>9}"
        lines.append(f"{_title(grouping, label):<24}{100 * m['prec@0.5']:>10.2f}%"
                     f"{100 * m['mean_iou']:>10.2f}%{100 * m['overall_iou']:>12.2f}%"
                     f"{m['num_samples']:>10d}{found}")
    return "\n".join(lines)


def markdown_group_table(grouping: str, sections: dict[str, dict[str, dict]]) -> str:
    """Return a markdown table of one grouping for one or more runs.

    ``sections`` maps a run's name to its ``by_<grouping>`` section. With one run the columns are
    prec@0.5, mean IoU, overall IoU (in %) and samples; with several, prec@0.5 and mean IoU of
    each run side by side, then the samples (of the first run that has the group).
    """
    if not sections:
        raise ValueError("no runs to tabulate")
    runs = list(sections)
    labels: list[str] = []
    for section in sections.values():
        labels += [label for label in section if label not in labels]
    head = TITLES.get(grouping, grouping)
    if len(runs) == 1:
        cols = ["prec@0.5", "mean IoU", "overall IoU", "samples"]
        keys = [(runs[0], "prec@0.5"), (runs[0], "mean_iou"), (runs[0], "overall_iou")]
    else:
        cols = [f"{run} {c}" for run in runs for c in ("prec@0.5", "mean IoU")] + ["samples"]
        keys = [(run, k) for run in runs for k in ("prec@0.5", "mean_iou")]
    lines = [f"| {head} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label in labels:
        cells = []
        for run, key in keys:
            m = sections[run].get(label)
            cells.append(f"{100 * m[key]:.1f}" if m else "-")
        first = next((sections[run][label] for run in runs if label in sections[run]))
        cells.append(str(first["num_samples"]))
        lines.append(f"| {_title(grouping, label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
