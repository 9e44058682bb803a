"""The procedural tabletop world: determinism, masks, referents, depth geometry, the demo scene."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from refseg_model.synth import DEMO_COMMAND, generate_scene, make_demo_scene, render
from refseg_model.synth.expressions import MIN_VISIBLE_FRACTION
from refseg_model.synth.objects import COLOURS, NOUNS, PLURALS

W, H = 160, 120
SEEDS = range(8)


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(s, W, H) for s in SEEDS]


def test_same_seed_same_scene():
    a, b = generate_scene((3, 1), W, H), generate_scene((3, 1), W, H)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.depth_m, b.depth_m)
    assert np.array_equal(a.K, b.K)
    assert a.to_json() == b.to_json()
    assert [r.expressions for r in a.regions] == [r.expressions for r in b.regions]
    assert all(np.array_equal(ra.mask, rb.mask) for ra, rb in zip(a.regions, b.regions))
    c = generate_scene((3, 2), W, H)
    assert not np.array_equal(a.rgb, c.rgb)


def test_scene_arrays_and_intrinsics(scenes):
    for scene in scenes:
        assert scene.rgb.shape == (H, W, 3) and scene.rgb.dtype == np.uint8
        assert scene.depth_m.shape == (H, W) and scene.depth_m.dtype == np.float32
        assert scene.K.shape == (3, 3) and scene.K[2, 2] == 1.0
        fx = scene.K[0, 0] * 640 / W
        assert 525 <= fx <= 615 and scene.K[0, 0] == scene.K[1, 1]
        assert abs(scene.K[0, 2] - W / 2) < 0.1 * W and abs(scene.K[1, 2] - H / 2) < 0.1 * H
        assert (scene.depth_m > 0).all() and (scene.depth_m < 10).all()
        assert 3 <= len(scene.objects) <= 7


def test_region_masks_match_objects(scenes):
    for scene in scenes:
        assert len({r.region_id for r in scene.regions}) == len(scene.regions)
        for region in scene.regions:
            assert region.mask.shape == (H, W) and region.mask.dtype == bool
            assert region.mask.any() == (region.kind != "absent"), region.region_id
            assert region.expressions and all(e.strip() for e in region.expressions)
            if region.kind == "object":
                (oid,) = region.object_ids
                obj = scene.objects[oid - 1]
                assert region.region_id == obj.region_id
                assert np.array_equal(region.mask, scene.object_mask(oid))
                assert obj.area == region.mask.sum()
                assert obj.visible_fraction >= MIN_VISIBLE_FRACTION
                x, y, w, h = obj.bbox
                ys, xs = np.nonzero(region.mask)
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            elif region.kind == "group":
                assert len(region.object_ids) in (2, 3)
                union = np.zeros((H, W), bool)
                for oid in region.object_ids:
                    union |= scene.object_mask(oid)
                assert np.array_equal(region.mask, union)
                cats = {scene.objects[i - 1].category for i in region.object_ids}
                assert len(cats) == 1
            elif region.kind == "absent":  # no referent: tests/model/test_no_target.py
                assert region.object_ids == () and region.region_id == "absent"
            else:
                assert region.kind == "stuff" and region.region_id in ("table", "wall", "floor")
                assert not (region.mask & (scene.labels >= render.FIRST_OBJECT)).any()
        # object masks do not overlap and objects are painted over the room
        covered = sum(scene.object_mask(o.object_id).astype(int) for o in scene.objects)
        assert covered.max() <= 1


def _visible(scene):
    return [o for o in scene.objects if o.area > 0]


def _noun_category(word: str) -> str | None:
    for cat, nouns in NOUNS.items():
        if word in nouns:
            return cat
    return None


def test_expressions_refer_uniquely(scenes):
    """Parse the simple forms back and check they pick out exactly the region's objects."""
    colours = "|".join(COLOURS)
    nouns = "|".join(n for ns in NOUNS.values() for n in ns)
    plurals = "|".join(PLURALS.values())
    checked = 0
    for scene in scenes:
        present = _visible(scene)
        for region in scene.regions:
            for text in region.expressions:
                m = re.fullmatch(rf"(?:the )?(?:({colours}) )?({nouns})", text)
                if m:
                    colour, cat = m.group(1), _noun_category(m.group(2))
                    hits = [o.object_id for o in present if o.category == cat and
                            (colour is None or o.colour == colour)]
                    assert hits == list(region.object_ids), (text, hits, region.object_ids)
                    checked += 1
                m = re.fullmatch(rf"(?:the )?(?:two |three |both |all the )?(?:({colours}) )?"
                                 rf"({plurals})", text)
                if m:
                    colour = m.group(1)
                    singular = [s for s, p in PLURALS.items() if p == m.group(2)][0]
                    cat = _noun_category(singular)
                    hits = [o.object_id for o in present if o.category == cat and
                            (colour is None or o.colour == colour)]
                    assert tuple(hits) == tuple(region.object_ids), text
                    checked += 1
                m = re.fullmatch(rf"the ({nouns}) on the (left|right)", text)
                if m:
                    cat = _noun_category(m.group(1))
                    same = [o for o in present if o.category == cat]
                    key = min if m.group(2) == "left" else max
                    target = key(same, key=lambda o: o.u)
                    assert (target.object_id,) == tuple(region.object_ids), text
                    checked += 1
    assert checked >= 10


def test_expression_regions_are_distinct_referents(scenes):
    """No expression names two regions of the same scene."""
    for scene in scenes:
        seen = {}
        for region in scene.regions:
            for text in region.expressions:
                plain = re.sub(r"^(pick up|grab|take|hand me|give me|point at|find|look at) ",
                               "", text)
                assert seen.setdefault(plain, region.region_id) == region.region_id, plain


def _world_points(scene, mask):
    v, u = np.nonzero(mask)
    z = scene.depth_m[v, u].astype(np.float64)
    K = scene.K
    pc = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    R = np.asarray(scene.camera["R_world_from_camera"]).reshape(3, 3)
    C = np.asarray(scene.camera["C_world"])
    return pc, pc @ R.T + C


def test_depth_back_projects_onto_table_and_wall_planes(scenes):
    for scene in scenes:
        top = scene.labels == render.TABLE
        pc, world = _world_points(scene, top)
        # a plane fit in the camera frame: the smallest singular value is ~0
        centred = pc - pc.mean(axis=0)
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        assert sv[-1] / np.sqrt(len(pc)) < 2e-4
        # and that plane is the table top z = 0, seen from the camera height
        assert np.abs(world[:, 2]).max() < 2e-3
        normal_cam = np.asarray(scene.camera["R_world_from_camera"]).reshape(3, 3)[2]
        assert abs(abs(vt[-1] @ normal_cam) - 1) < 1e-3
        wall = scene.labels == render.WALL
        if wall.sum() > 20:
            _, world = _world_points(scene, wall)
            assert np.ptp(world[:, 1]) < 4e-3
        # objects stand on the table: their pixels are in front of it and above it
        objs = scene.labels >= render.FIRST_OBJECT
        _, world = _world_points(scene, objs)
        assert world[:, 2].min() > -2e-3


def test_plural_expressions_produce_group_regions():
    groups = 0
    for s in range(20, 32):
        scene = generate_scene(s, W, H)
        for region in scene.regions:
            if region.kind == "group":
                groups += 1
                members = [scene.objects[i - 1] for i in region.object_ids]
                word = {2: ("two", "both"), 3: ("three", "all")}[len(members)]
                assert any(any(w in e.split() for w in word) or e.split()[-1].endswith("s")
                           for e in region.expressions)
    assert groups > 0


def test_demo_scene_has_one_red_cup_on_the_left():
    scene, command, region = make_demo_scene(seed=0, width=W, height=H)
    assert command == DEMO_COMMAND == "pick up the red cup on the left"
    red_cups = [o for o in scene.objects if o.category == "cup" and o.colour == "red"]
    assert len(red_cups) == 2
    left = min(red_cups, key=lambda o: o.u)
    assert region.object_ids == (left.object_id,)
    assert np.array_equal(region.mask, scene.object_mask(left.object_id))
    assert region.mask.sum() > 50
    assert "the red cup on the left" in region.expressions
    again, _, region2 = make_demo_scene(seed=0, width=W, height=H)
    assert np.array_equal(again.rgb, scene.rgb) and np.array_equal(region.mask, region2.mask)


def test_scene_json_is_plain_json(scenes):
    import json

    data = json.loads(json.dumps(scenes[0].to_json()))
    assert data["width"] == W and len(data["K"]) == 9
    assert {o["category"] for o in data["objects"]} <= set(NOUNS)
    assert [r["region_id"] for r in data["regions"]] == [r.region_id for r in scenes[0].regions]


def test_bad_size_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        generate_scene(0, 16, 12)


def test_refseg_synth_help():
    out = subprocess.run([sys.executable, "-m", "refseg_model.cli.synth", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--out", "--num-images", "--seed", "--workers", "--val-frac", "--test-frac"):
        assert flag in out
