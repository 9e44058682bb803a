"""Primary target, 3D back-projection and depth pairing, on hand-made arrays."""

import math

import numpy as np
import pytest

from refseg_node.perception.geometry import Intrinsics, back_project, target_point
from refseg_node.perception.targets import no_target, primary_target


def two_regions():
    """Return a 20x30 mask: a big faint region (left) and a small confident one (right)."""
    mask = np.zeros((20, 30), bool)
    probs = np.full((20, 30), 0.1, np.float32)
    mask[2:12, 1:11] = True          # 100 pixels at p = 0.55 -> sum 55
    probs[2:12, 1:11] = 0.55
    mask[5:9, 20:28] = True          # 32 pixels at p = 0.95 -> sum 30.4
    probs[5:9, 20:28] = 0.95
    return mask, probs


def test_primary_target_is_the_component_with_the_highest_summed_probability():
    mask, probs = two_regions()
    t = primary_target(mask, probs)
    assert t.found and t.num_regions == 2 and t.mask_area == 132
    assert t.area == 100 and t.bbox == (1, 2, 10, 10)
    assert t.centroid == pytest.approx((5.5, 6.5))
    assert t.score == pytest.approx(0.55)
    assert t.region.sum() == 100 and t.region[2, 1] and not t.region[5, 20]
    probs[5:9, 20:28] = 1.0
    probs[2:12, 1:11] = 0.3             # now 30 < 32
    t = primary_target(mask, probs)
    assert t.area == 32 and t.bbox == (20, 5, 8, 4) and t.score == pytest.approx(1.0)
    assert t.centroid == pytest.approx((23.5, 6.5))


def test_every_region_is_listed_primary_first():
    mask, probs = two_regions()
    mask[15:17, 2:4] = True             # a third, 4 pixels at p = 0.1
    t = primary_target(mask, probs)
    assert [r.area for r in t.regions] == [100, 32, 4]
    first = t.regions[0]
    assert (first.bbox, first.area, first.score) == (t.bbox, t.area, pytest.approx(t.score))
    assert first.centroid == pytest.approx(t.centroid)
    assert t.regions[1].bbox == (20, 5, 8, 4) and t.regions[1].score == pytest.approx(0.95)
    assert t.regions[1].centroid == pytest.approx((23.5, 6.5))
    assert t.regions[2].score == pytest.approx(0.1)
    assert [r.area for r in primary_target(mask, probs, max_regions=2).regions] == [100, 32]
    assert no_target((4, 5)).regions == ()


def test_region_messages_carry_every_region():
    from refseg_node.ros_io.messages import region_msg

    mask, probs = two_regions()
    msg = region_msg(primary_target(mask, probs).regions[1])
    assert (msg.bbox.x_offset, msg.bbox.y_offset, msg.bbox.width, msg.bbox.height) == (
        20, 5, 8, 4)
    assert msg.area == 32 and msg.score == pytest.approx(0.95)
    assert (msg.centroid.x, msg.centroid.y, msg.centroid.z) == pytest.approx((23.5, 6.5, 0.0))


def test_diagonal_pixels_are_one_region():
    mask = np.eye(5, dtype=bool)
    t = primary_target(mask, mask.astype(np.float32))
    assert t.num_regions == 1 and t.area == 5


def test_regions_match_labelling_the_whole_frame():
    """primary_target labels the mask's bounding box only: frame coordinates, same components."""
    import cv2

    rng = np.random.default_rng(4)
    for trial in range(40):
        mask = np.zeros((120, 160), bool)
        for _ in range(rng.integers(1, 5)):
            y, x = rng.integers(0, 120), rng.integers(0, 160)
            h, w = rng.integers(1, 25, 2)
            mask[y:y + h, x:x + w] = True
        if trial % 4 == 0:
            mask = rng.random(mask.shape) < 0.03  # noise: many small components
        probs = rng.random(mask.shape).astype(np.float32)
        target = primary_target(mask, probs)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(
            mask.view(np.uint8), connectivity=8)
        assert target.num_regions == count - 1
        assert target.mask_area == int(mask.sum())
        by_box = {tuple(int(v) for v in stats[i, :4]): i for i in range(1, count)}
        for region in target.regions:
            i = by_box[region.bbox]
            assert region.area == stats[i, cv2.CC_STAT_AREA]
            assert np.allclose(region.centroid, centroids[i])
            assert math.isclose(region.score, float(probs[labels == i].mean()), rel_tol=1e-5)
        best = by_box[target.bbox]
        assert np.array_equal(target.region, labels == best)
        assert target.region.shape == mask.shape


def test_empty_mask_has_no_target():
    t = primary_target(np.zeros((4, 5), bool), np.zeros((4, 5), np.float32))
    assert not t.found and t.area == 0 and t.num_regions == 0 and t.region.shape == (4, 5)
    empty = no_target((4, 5))
    assert not empty.found and empty.area == 0 and empty.bbox == (0, 0, 0, 0)
    assert not empty.region.any()
    with pytest.raises(ValueError, match="same HxW"):
        primary_target(np.zeros((4, 5), bool), np.zeros((5, 4)))


K = Intrinsics.from_k([500.0, 0, 160.0, 0, 400.0, 100.0, 0, 0, 1], 320, 240)


def test_back_project_known_pixel():
    assert back_project(160.0, 100.0, 2.0, K) == (0.0, 0.0, 2.0)
    x, y, z = back_project(410.0, 300.0, 2.0, K)
    assert (x, y, z) == pytest.approx((1.0, 1.0, 2.0))


def test_target_point_uses_the_median_valid_depth_at_the_centroid():
    depth = np.full((240, 320), 3.0, np.float32)
    region = np.zeros((240, 320), bool)
    region[80:120, 200:260] = True                   # 2400 px, centroid (229.5, 99.5)
    depth[80:120, 200:260] = 1.25
    depth[80:90, 200:260] = np.nan                   # holes
    depth[90:95, 200:260] = 0.0                      # "no depth" zeros
    depth[95:100, 200:230] = 9.0                     # background through the edge (150 px)
    result = target_point(depth, region, K)
    x, y, z = result.point
    assert z == pytest.approx(1.25)
    assert x == pytest.approx((229.5 - 160.0) * 1.25 / 500.0)
    assert y == pytest.approx((99.5 - 100.0) * 1.25 / 400.0)
    assert result.valid_pixels == 2400 - 600 - 300
    # The centroid given by the caller wins.
    assert target_point(depth, region, K, centroid=(160.0, 100.0)).point == pytest.approx(
        (0.0, 0.0, 1.25))


def test_no_point_rather_than_a_wrong_one():
    region = np.zeros((240, 320), bool)
    region[10:20, 10:20] = True
    empty = np.full((240, 320), np.nan, np.float32)
    assert "valid depth" in target_point(empty, region, K).reason
    sparse = empty.copy()
    sparse[10:12, 10:15] = 1.0                       # 10 of 100 pixels: under 20 %
    assert target_point(sparse, region, K).point is None
    assert target_point(np.ones((120, 160)), region, K).reason.startswith("depth image")
    other = Intrinsics.from_k(K_LIST, 640, 480)
    assert "camera_info" in target_point(np.ones((240, 320)), region, other).reason
    assert target_point(np.ones((240, 320)), np.zeros((240, 320), bool), K).point is None


K_LIST = [500.0, 0, 160.0, 0, 400.0, 100.0, 0, 0, 1]


@pytest.mark.parametrize("k", [[0.0] * 9, [math.nan, 0, 1, 0, 1, 1, 0, 0, 1],
                               [-1.0, 0, 1, 0, 1, 1, 0, 0, 1], [1.0] * 4])
def test_uncalibrated_intrinsics_are_refused(k):
    with pytest.raises(ValueError):
        Intrinsics.from_k(k)


def test_unknown_calibration_size_matches_any_image():
    k = Intrinsics.from_k(K_LIST)
    assert k.matches(320, 240) and k.matches(1, 1)
    assert K.matches(320, 240) and not K.matches(640, 480)
