"""Referring expressions for a rendered scene, each checked to pick out exactly its region.

The grammar (see ``docs/synthetic_world.md``) mixes the terse style of ReferIt ("left cup",
"bottom right") with spoken commands ("pick up the red cup on the left"). An expression is only
produced when its referent is unique among the visible objects of the scene, with margins so that
it is also unambiguous to a person looking at the picture:

- category: "the jar", when it is the only jar;
- attributes: "the blue box", "the small red cup", "the red one";
- absolute position inside a set of look-alikes: "the jar on the left", "the leftmost bottle",
  "the cup in the middle", "the nearest ball"; in the whole picture: "the object on the far left",
  "bottom right";
- relations to a landmark with its own unique description: "the bottle next to the blue box",
  "the ball in front of the bowl", "the cup left of the jar";
- plurals over every look-alike: "the two green balls" (a group region: the union of the masks);
- stuff: "the table", "the wall", "the floor";
- no target at all ("it is not there" is an answer): a category the scene lacks ("the jar",
  "the jar on the left" with no jar), a colour+category pair it lacks though both words occur in
  it ("the blue cup" beside a blue box and a red cup), a colour no object has ("the purple
  one"), and a relation to an absent landmark ("the cup next to the yellow bowl" with a cup but
  no yellow bowl). Their region is empty (no pixel), of kind ``absent``.

Each expression keeps the *strategy* that produced it (``category``, ``colour``, ``colour_only``,
``size``, ``position``, ``global``, ``corner``, ``relation``, ``plural``, ``plural_colour``,
``table``, ``wall``, ``floor``, ``absent_category``, ``absent_colour``, ``absent_colour_only``,
``absent_relation``)
and its coarser *kind* (:data:`EXPRESSION_KINDS`, see
:func:`kind_of_strategy`), so that evaluation can be broken down by what the expression asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from refseg_model.synth.objects import (
    CATEGORIES,
    COLOURS,
    COMPARATIVES,
    NOUNS,
    PLURALS,
    SIZE_WORDS,
)

MIN_VISIBLE_FRACTION = 0.3  # objects hidden more than this are never targets
MIN_TARGET_AREA = 0.0015  # of the image
X_MARGIN = 0.06  # of the image width: gap between "the left one" and the next
DEPTH_MARGIN = 0.08  # metres: gap between "the front one" and the next
SIZE_MARGIN = 1.18  # apparent size ratio between "the small one" and the others
NEAR_GAP, FAR_GAP = 0.06, 0.14  # metres between footprints for "next to"
COMMANDS = ("pick up", "grab", "take", "hand me", "give me", "point at", "find")
STUFF_COMMANDS = ("point at", "find", "look at")
ONE = {2: "two", 3: "three"}
ABSENT_POSITIONS = ("left", "right", "middle", "front", "back")
PRESENT_KINDS = ("category", "colour", "colour_only", "size", "position", "relation", "plural",
                 "stuff")
NO_TARGET_KINDS = ("absent_category", "absent_colour", "absent_colour_only", "absent_relation")
EXPRESSION_KINDS = PRESENT_KINDS + NO_TARGET_KINDS
"""Kinds of expression, in table order: "position" is an absolute position (among look-alikes,
in the whole picture or a corner), "plural" names a group of look-alikes; the ``absent_*`` kinds
(:data:`NO_TARGET_KINDS`) have no referent in the scene: the right answer is "not found"."""
STRATEGY_WEIGHTS: dict[str, float] = {"relation": 3.0, "size": 3.0, "position": 1.5,
                                      "global": 1.5, "corner": 1.5}
"""How much more often than the others a strategy is drawn first for a region (when it applies):
relations, size words and positions are what a grasp command turns on, and each applies to few
objects of a scene, so uniform draws left them 5% (relation) and 4% (size) of the expressions.
``docs/RESULTS.md`` has the A/B against uniform draws (weights all 1)."""
ABSENT_REGION_ID = "absent"
"""Region id of a scene's no-target expressions (their mask is empty)."""
_KIND_OF_STRATEGY = {"global": "position", "corner": "position", "plural_colour": "plural",
                     "table": "stuff", "wall": "stuff", "floor": "stuff"}


def kind_of_strategy(strategy: str) -> str:
    """Return the kind (one of :data:`EXPRESSION_KINDS`) of a generator strategy."""
    kind = _KIND_OF_STRATEGY.get(strategy, strategy)
    if kind not in EXPRESSION_KINDS:
        raise ValueError(f"unknown expression strategy {strategy!r}")
    return kind


def is_no_target_kind(kind: str) -> bool:
    """Return whether expressions of ``kind`` have no referent (the answer is "not found")."""
    return kind in NO_TARGET_KINDS


def _strategy_name(key: str) -> str:
    """Name a :class:`_Phrases` key: the plural keys carry their colour ("plural red ")."""
    if key.startswith("plural"):
        return "plural_colour" if key.strip() != "plural" else "plural"
    return key


@dataclass
class RegionText:
    """A region to be written: id, kind, the objects it covers, its expressions and strategies.

    ``strategies[k]`` names the strategy that produced ``expressions[k]``.
    """

    region_id: str
    kind: str
    object_ids: tuple
    expressions: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)


class _Phrases:
    """Candidate phrasings grouped by strategy; draws a few, one surface form each."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.by_strategy: dict[str, list[list[str]]] = {}

    def add(self, strategy: str, forms: list[str]) -> None:
        self.by_strategy.setdefault(strategy, []).append(forms)

    def pick(self, k: int, commands: tuple) -> tuple[list[str], list[str]]:
        """Draw up to ``k`` distinct expressions; return them and the strategy of each.

        Strategies are taken in a random order weighted by :data:`STRATEGY_WEIGHTS` (a weight
        ``w`` puts a strategy first ``w`` times as often as a weight of 1); a region that a
        strategy of weight over 2 applies to gets one expression more.
        """
        rng = self.rng
        strategies = sorted(self.by_strategy)
        if any(STRATEGY_WEIGHTS.get(_strategy_name(s), 1.0) > 2.0 for s in strategies):
            k += 1  # one more expression where a relation or a size word applies
        keys = rng.random(len(strategies))  # weighted order: sort by u ** (1 / w), largest first
        weights = [STRATEGY_WEIGHTS.get(_strategy_name(s), 1.0) for s in strategies]
        strategies = [s for _, s in sorted(zip(-keys ** (1.0 / np.asarray(weights)), strategies))]
        chosen: list[str] = []
        origin: list[str] = []
        rounds = 0
        while len(chosen) < k and rounds < 4:
            for s in strategies:
                if len(chosen) >= k:
                    break
                options = self.by_strategy[s]
                forms = options[int(rng.integers(len(options)))]
                text = forms[int(rng.integers(len(forms)))]
                if rng.random() < 0.12 and text.startswith(("the ", "both ", "all ")):
                    text = f"{commands[int(rng.integers(len(commands)))]} {text}"
                if text not in chosen:
                    chosen.append(text)
                    origin.append(_strategy_name(s))
            rounds += 1
        return chosen, origin


def _the(np_: str) -> list[str]:
    return [f"the {np_}", f"the {np_}", np_]


def _noun(rng: np.random.Generator, category: str) -> str:
    names = NOUNS[category]
    return names[0] if len(names) == 1 or rng.random() < 0.75 else names[1]


def _position_forms(d: str, where: str) -> list[str]:
    if where == "left" or where == "right":
        w = where
        return [f"the {d} on the {w}", f"the {w} {d}", f"the {w}most {d}", f"{d} on {w}",
                f"{w} {d}", f"the {d} on the {w} side"]
    if where == "middle":
        return [f"the {d} in the middle", f"the middle {d}", f"{d} in the middle",
                f"the {d} in the center"]
    if where == "front":
        return [f"the {d} in front", f"the front {d}", f"the closest {d}", f"the nearest {d}",
                f"{d} in front"]
    return [f"the {d} at the back", f"the back {d}", f"the farthest {d}", f"the {d} in the back",
            f"{d} in back"]


def _extreme(objs: list, target, key, margin: float) -> str | None:
    """Say whether ``target`` is the lowest ("min") or highest ("max") by ``key``, clearly."""
    others = [key(o) for o in objs if o is not target]
    if not others:
        return None
    v = key(target)
    if v + margin <= min(others):
        return "min"
    if v - margin >= max(others):
        return "max"
    return None


def _positions(objs: list, target, width: int) -> list[str]:
    """Absolute positions that single out ``target`` among ``objs`` (its look-alikes)."""
    out = []
    side = _extreme(objs, target, lambda o: o.u, X_MARGIN * width)
    if side:
        out.append("left" if side == "min" else "right")
    if len(objs) == 3 and not side:
        xs = sorted(o.u for o in objs)
        if xs[1] == target.u and xs[1] - xs[0] >= X_MARGIN * width and \
                xs[2] - xs[1] >= X_MARGIN * width:
            out.append("middle")
    depth = _extreme(objs, target, lambda o: o.distance, DEPTH_MARGIN)
    if depth:
        out.append("front" if depth == "min" else "back")
    return out


def _relation(a, b) -> set[str]:
    """Relations that clearly hold from ``a`` to landmark ``b`` (viewer frame, metres)."""
    rel = set()
    dx, dz = b.lateral - a.lateral, b.distance - a.distance
    gap = float(np.hypot(dx, dz)) - a.radius - b.radius
    if gap <= NEAR_GAP:
        rel.add("next to")
    if dx >= 0.5 * (a.radius + b.radius) + 0.02 and abs(dz) <= 0.2:
        rel.add("left of")
    if -dx >= 0.5 * (a.radius + b.radius) + 0.02 and abs(dz) <= 0.2:
        rel.add("right of")
    if dz >= 0.5 * (a.radius + b.radius) + 0.02 and abs(dx) <= max(a.radius, b.radius) + 0.04:
        rel.add("in front of")
    if -dz >= 0.5 * (a.radius + b.radius) + 0.02 and abs(dx) <= max(a.radius, b.radius) + 0.04:
        rel.add("behind")
    return rel


def _maybe_relation(a, b) -> set[str]:
    """Relations that a person might still see from ``a`` to ``b`` (loose thresholds)."""
    rel = set()
    dx, dz = b.lateral - a.lateral, b.distance - a.distance
    gap = float(np.hypot(dx, dz)) - a.radius - b.radius
    if gap < FAR_GAP:
        rel.add("next to")
    if dx > 0.01 and abs(dz) < 0.3:
        rel.add("left of")
    if -dx > 0.01 and abs(dz) < 0.3:
        rel.add("right of")
    if dz > 0.01 and abs(dx) < max(a.radius, b.radius) + 0.1:
        rel.add("in front of")
    if -dz > 0.01 and abs(dx) < max(a.radius, b.radius) + 0.1:
        rel.add("behind")
    return rel


RELATION_FORMS = {
    "next to": ("the {d} next to the {l}", "the {d} beside the {l}", "{d} next to {l}",
                "the {d} near the {l}"),
    "left of": ("the {d} left of the {l}", "the {d} to the left of the {l}",
                "{d} left of {l}"),
    "right of": ("the {d} right of the {l}", "the {d} to the right of the {l}",
                 "{d} right of {l}"),
    "in front of": ("the {d} in front of the {l}", "{d} in front of {l}"),
    "behind": ("the {d} behind the {l}", "{d} behind {l}"),
}


def _short_name(o, present: list, rng: np.random.Generator) -> str | None:
    """Return the shortest unique description of a landmark: "jar" or "blue box"."""
    same_cat = [p for p in present if p.category == o.category]
    if len(same_cat) == 1:
        return _noun(rng, o.category)
    same = [p for p in same_cat if p.colour == o.colour]
    if len(same) == 1:
        return f"{o.colour} {_noun(rng, o.category)}"
    return None


def describe_object(o, present: list, rng: np.random.Generator, width: int, height: int
                    ) -> _Phrases:
    """Every unambiguous way to refer to object ``o`` among the ``present`` objects."""
    ph = _Phrases(rng)
    noun = _noun(rng, o.category)
    same_cat = [p for p in present if p.category == o.category]
    same_cc = [p for p in same_cat if p.colour == o.colour]
    if len(same_cat) == 1:
        ph.add("category", _the(noun))
    if len(same_cc) == 1:
        ph.add("colour", _the(f"{o.colour} {noun}"))
        if len([p for p in present if p.colour == o.colour]) == 1:
            ph.add("colour_only", [f"the {o.colour} one", f"the {o.colour} object",
                                   f"the {o.colour} thing"])
    for group, d in ((same_cat, noun), (same_cc, f"{o.colour} {noun}")):
        if len(group) < 2:
            continue
        if len([p for p in group if p.size == o.size]) == 1 and \
                _extreme(group, o, lambda p: np.log(p.apparent_size), np.log(SIZE_MARGIN)) == \
                ("min" if o.size == "small" else "max"):
            words = SIZE_WORDS[o.size]
            word = words[int(rng.integers(len(words)))]
            forms = _the(f"{word} {d}")
            if len(group) == 2:
                forms.append(f"the {COMPARATIVES[o.size]} {d}")
            ph.add("size", forms)
        for where in _positions(group, o, width):
            ph.add("position", _position_forms(d, where))
        # relations to a landmark of another category
        for landmark in present:
            if landmark.category == o.category:
                continue
            name = _short_name(landmark, present, rng)
            if name is None:
                continue
            holds = _relation(o, landmark)
            for rel in sorted(holds):
                if all(rel not in _maybe_relation(p, landmark) for p in group if p is not o):
                    forms = [f.format(d=d, l=name) for f in RELATION_FORMS[rel]]
                    ph.add("relation", forms)
    # the whole picture: far left / far right, corners
    side = _extreme(present, o, lambda p: p.u, X_MARGIN * width)
    if side:
        w = "left" if side == "min" else "right"
        ph.add("global", [f"the object on the far {w}", f"the {w}most object",
                          f"far {w} object", f"the thing on the far {w}"])
    col = min(int(3 * o.centroid[0] / width), 2)
    row = min(int(3 * o.centroid[1] / height), 2)
    if col != 1 and row != 1:
        cell = [p for p in present if min(int(3 * p.centroid[0] / width), 2) == col and
                min(int(3 * p.centroid[1] / height), 2) == row]
        if len(cell) == 1 and cell[0] is o:
            corner = f"{'top' if row == 0 else 'bottom'} {'left' if col == 0 else 'right'}"
            ph.add("corner", [corner, f"the object in the {corner}", f"{corner} {noun}",
                              f"the {noun} in the {corner} corner"])
    return ph


def describe_groups(present: list, rng: np.random.Generator) -> list[tuple[tuple, _Phrases]]:
    """Plural expressions: every look-alike set of 2 or 3 objects, e.g. "the two green balls"."""
    sets: dict[tuple, _Phrases] = {}
    cats = sorted({p.category for p in present})
    for cat in cats:
        same_cat = [p for p in present if p.category == cat]
        candidates = [(same_cat, "")]
        for colour in sorted({p.colour for p in same_cat}):
            candidates.append(([p for p in same_cat if p.colour == colour], colour + " "))
        for members, adj in candidates:
            if len(members) not in (2, 3):
                continue
            if any(p.visible_fraction < MIN_VISIBLE_FRACTION for p in members):
                continue
            ids = tuple(sorted(p.object_id for p in members))
            plural = PLURALS[_noun(rng, cat)]
            k = ONE[len(members)]
            forms = [f"the {k} {adj}{plural}", f"the {adj}{plural}", f"{k} {adj}{plural}"]
            forms.append(f"both {adj}{plural}" if len(members) == 2 else f"all the {adj}{plural}")
            sets.setdefault(ids, _Phrases(rng)).add("plural " + adj, forms)
    return sorted(sets.items())


def describe_absent(present: list, rng: np.random.Generator) -> _Phrases:
    """Expressions with no referent among the ``present`` objects (kinds ``absent_*``).

    - ``absent_category``: a category no object of the scene has;
    - ``absent_colour``: a colour+category pair no object has, though an object of that category
      and an object of that colour are both in the picture (the hard case: every word occurs);
    - ``absent_colour_only``: a colour no object has, alone ("the purple one");
    - ``absent_relation``: a present object related to a landmark that is not there (an absent
      category, or an absent colour+category pair).
    An absent category is also asked for at a position ("the jar on the left"): without those,
    1 in 6 of them was answered found (``tools/ab/absent_probe.py``).
    Objects hidden behind others count as present (a speaker may know they are there).
    """
    ph = _Phrases(rng)
    cats = sorted({p.category for p in present})
    colours = sorted({p.colour for p in present})
    pairs = {(p.colour, p.category) for p in present}
    absent_cats = [c for c in CATEGORIES if c not in cats]
    absent_pairs = [(col, cat) for cat in cats for col in colours if (col, cat) not in pairs]
    if absent_cats:
        cat = absent_cats[int(rng.integers(len(absent_cats)))]
        noun = _noun(rng, cat)
        where = ABSENT_POSITIONS[int(rng.integers(len(ABSENT_POSITIONS)))]
        ph.add("absent_category", _the(noun) + _position_forms(noun, where)[:3])
    if absent_pairs:
        col, cat = absent_pairs[int(rng.integers(len(absent_pairs)))]
        ph.add("absent_colour", _the(f"{col} {_noun(rng, cat)}"))
    absent_colours = [c for c in COLOURS if c not in colours]
    if absent_colours:
        col = absent_colours[int(rng.integers(len(absent_colours)))]
        ph.add("absent_colour_only", [f"the {col} one", f"the {col} object", f"the {col} thing"])
    landmarks = [_noun(rng, c) for c in absent_cats] + \
        [f"{col} {_noun(rng, cat)}" for col, cat in absent_pairs]
    if landmarks and cats:
        cat = cats[int(rng.integers(len(cats)))]
        landmark = landmarks[int(rng.integers(len(landmarks)))]
        forms = RELATION_FORMS[sorted(RELATION_FORMS)[int(rng.integers(len(RELATION_FORMS)))]]
        ph.add("absent_relation", [f.format(d=_noun(rng, cat), l=landmark) for f in forms])
    return ph


def count_expressions(rng: np.random.Generator) -> int:
    """How many expressions a region gets: 1 to 3 (some regions have a single one)."""
    return int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))


def describe_scene(objects: list, stuff: dict, rng: np.random.Generator, width: int,
                   height: int) -> list[RegionText]:
    """All regions of a scene with their expressions.

    ``objects`` are the scene's objects (attributes of
    :class:`~refseg_model.synth.scene.SceneObject`); ``stuff`` maps "table", "wall", "floor"
    to (area fraction, extra words) of what is visible.
    """
    present = [o for o in objects if o.area > 0]
    regions: list[RegionText] = []
    for o in present:
        if o.visible_fraction < MIN_VISIBLE_FRACTION or o.area < MIN_TARGET_AREA * width * height:
            continue
        texts, strategies = describe_object(o, present, rng, width, height).pick(
            count_expressions(rng), COMMANDS)
        if texts:
            regions.append(RegionText(o.region_id, "object", (o.object_id,), texts, strategies))
    for j, (ids, ph) in enumerate(describe_groups(present, rng), start=1):
        texts, strategies = ph.pick(count_expressions(rng), COMMANDS)
        if texts:
            regions.append(RegionText(f"g{j}", "group", ids, texts, strategies))
    stuff_forms = {
        "table": ["the table", "table", "the tabletop", "the table surface"],
        "wall": ["the wall", "wall", "the wall behind the table", "the background wall"],
        "floor": ["the floor", "floor", "the floor under the table"],
    }
    for name in ("table", "wall", "floor"):
        if name not in stuff:
            continue
        fraction, extra = stuff[name]
        if fraction < (0.02 if name != "table" else 0.05):
            continue
        ph = _Phrases(rng)
        ph.add(name, stuff_forms[name] + list(extra))
        texts, strategies = ph.pick(int(rng.choice([1, 2], p=[0.75, 0.25])), STUFF_COMMANDS)
        regions.append(RegionText(name, "stuff", (), texts, strategies))
    if present:
        absent = describe_absent(present, rng)
        texts, strategies = absent.pick(int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])), COMMANDS)
        if texts:
            regions.append(RegionText(ABSENT_REGION_ID, "absent", (), texts, strategies))
    return regions
