"""The target's points and 3D extent (perception.cloud) on hand-made and synthetic RGB-D frames."""

import numpy as np
import pytest

from refseg_node.perception.cloud import (
    CloudSettings,
    erode_region,
    extent,
    principal_axes,
    target_geometry,
    target_points,
    voxel_downsample,
)
from refseg_node.perception.geometry import Intrinsics

W, H = 80, 60
K = Intrinsics(fx=100.0, fy=90.0, cx=40.0, cy=30.0, width=W, height=H)


def box_region(x0=20, y0=15, x1=60, y1=45):
    region = np.zeros((H, W), bool)
    region[y0:y1, x0:x1] = True
    return region


def test_points_are_the_back_projected_pixels_of_the_eroded_region():
    depth = np.full((H, W), 1.5, np.float32)
    region = box_region()
    points = target_points(depth, region, K, settings=CloudSettings(erode_px=1))
    assert points.reason == "" and points.eroded
    assert len(points) == 38 * 28                        # one pixel off each side
    u = points.xyz[:, 0] * K.fx / points.xyz[:, 2] + K.cx
    v = points.xyz[:, 1] * K.fy / points.xyz[:, 2] + K.cy
    np.testing.assert_allclose(points.xyz[:, 2], 1.5)
    assert u.min() == pytest.approx(21) and u.max() == pytest.approx(58)
    assert v.min() == pytest.approx(16) and v.max() == pytest.approx(43)
    first = points.xyz[0]                                # row-major order: top-left first
    assert tuple(first) == pytest.approx(((21 - 40) * 1.5 / 100, (16 - 30) * 1.5 / 90, 1.5))


def test_colours_follow_their_pixels():
    depth = np.full((H, W), 1.0, np.float32)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = np.arange(W)[None, :]
    rgb[..., 1] = np.arange(H)[:, None]
    points = target_points(depth, box_region(), K, rgb, CloudSettings(erode_px=0))
    u = np.rint(points.xyz[:, 0] * K.fx / points.xyz[:, 2] + K.cx).astype(int)
    v = np.rint(points.xyz[:, 1] * K.fy / points.xyz[:, 2] + K.cy).astype(int)
    np.testing.assert_array_equal(points.rgb[:, 0], u)
    np.testing.assert_array_equal(points.rgb[:, 1], v)


def test_background_seen_through_the_edge_and_holes_are_dropped():
    depth = np.full((H, W), 0.8, np.float32)
    depth += np.random.default_rng(0).normal(0, 0.002, depth.shape).astype(np.float32)
    region = box_region()
    depth[15:45, 20:24] = 2.5        # background showing through the left edge (inside the mask)
    depth[30, 30:40] = np.nan        # holes
    depth[31, 30:40] = 0.0
    points = target_points(depth, region, K, settings=CloudSettings(erode_px=0))
    assert points.xyz[:, 2].max() < 0.82 and points.xyz[:, 2].min() > 0.78
    assert len(points) == 40 * 30 - 4 * 30 - 20


def test_thin_regions_are_used_whole_rather_than_lost():
    depth = np.full((H, W), 1.0, np.float32)
    region = box_region(10, 20, 70, 23)   # 3 rows: a 2-pixel erosion leaves nothing
    points = target_points(depth, region, K, settings=CloudSettings(erode_px=2))
    assert not points.eroded and len(points) == 60 * 3


@pytest.mark.parametrize("case,reason", [
    ("empty", "empty"), ("no_depth", "valid depth"), ("too_few", "need 30"),
    ("size", "not aligned"), ("calibration", "camera_info is for"),
])
def test_too_few_points_give_a_reason(case, reason):
    depth = np.full((H, W), 1.0, np.float32)
    region, k = box_region(), K
    if case == "empty":
        region = np.zeros((H, W), bool)
    elif case == "no_depth":
        depth[:] = np.nan
    elif case == "too_few":
        region = box_region(10, 10, 15, 15)
    elif case == "size":
        depth = depth[:, :-1]
    elif case == "calibration":
        k = Intrinsics(100.0, 90.0, 40.0, 30.0, width=640, height=480)
    geometry = target_geometry(depth, region, k, settings=CloudSettings(erode_px=0))
    assert geometry.extent is None and reason in geometry.reason


def test_stride_and_voxel_subsampling():
    depth = np.full((H, W), 1.0, np.float32)
    region = box_region()
    strided = target_points(depth, region, K, settings=CloudSettings(erode_px=0, stride=2))
    assert len(strided) == 20 * 15
    xyz = np.array([[0.0, 0.0, 1.0], [0.004, 0.0, 1.0], [0.012, 0.0, 1.0]], np.float32)
    rgb = np.array([[0, 0, 0], [100, 50, 10], [7, 7, 7]], np.uint8)
    merged, colours = voxel_downsample(xyz, rgb, 0.01)
    np.testing.assert_allclose(merged, [[0.002, 0.0, 1.0], [0.012, 0.0, 1.0]], atol=1e-7)
    np.testing.assert_array_equal(colours, [[50, 25, 5], [7, 7, 7]])
    voxeled = target_points(depth, region, K, settings=CloudSettings(erode_px=0, voxel=0.05))
    assert 0 < len(voxeled) < len(strided)


def test_erode_region_takes_a_disc_off_the_border():
    region = box_region()
    assert erode_region(region, 0).sum() == region.sum()
    assert erode_region(region, 3).sum() == 34 * 24
    edge = np.zeros((H, W), bool)
    edge[:10, :10] = True                    # touches the image border: eroded there too
    assert not erode_region(edge, 1)[0].any()


def test_extent_of_a_rotated_box_of_points():
    rng = np.random.default_rng(3)
    local = rng.uniform(-0.5, 0.5, (20000, 3)) * np.array([0.20, 0.08, 0.04])
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                         [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([0.1, -0.05, 0.9])
    xyz = local @ rotation.T + centre
    e = extent(xyz)
    assert e.num_points == 20000
    np.testing.assert_allclose(e.center, centre, atol=0.003)
    # the 2nd..98th percentile span of a uniform spread is 96 % of it: corrected for
    np.testing.assert_allclose(e.principal_sizes, [0.20, 0.08, 0.04], rtol=0.02)
    grown = extent(xyz, margin=(0.01, 0.02, 0.0))  # the erosion's width, added across the view
    np.testing.assert_allclose(grown.size - e.size, [0.01, 0.02, 0.0], atol=1e-12)
    np.testing.assert_allclose(grown.principal_sizes - e.principal_sizes,
                               np.abs(e.axes) @ [0.01, 0.02, 0.0], atol=1e-12)
    assert abs(e.axes[0] @ rotation[:, 0]) == pytest.approx(1.0, abs=1e-3)
    assert abs(e.axes[2][2]) == pytest.approx(1.0, abs=1e-3)
    assert np.linalg.det(e.axes) == pytest.approx(1.0)
    np.testing.assert_allclose(e.axes @ e.axes.T, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(e.box_center, centre, atol=0.003)
    span = np.ptp(xyz, axis=0)
    assert np.all(e.size <= 1.01 * span) and np.all(e.size > 0.8 * span)


def test_principal_axes_signs_are_reproducible():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 3)) * [3.0, 2.0, 1.0]
    a, b = principal_axes(xyz), principal_axes(xyz[::-1] * 1.0)
    np.testing.assert_allclose(a, b, atol=1e-9)
    for axis in a[:2]:
        assert axis[np.argmax(np.abs(axis))] > 0


def test_extent_refuses_too_few_points():
    with pytest.raises(ValueError, match="N >= 3"):
        extent(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="stride"):
        CloudSettings(stride=0)


@pytest.fixture(scope="module")
def demo():
    from refseg_model.synth import make_demo_scene

    scene, _, region = make_demo_scene(0, 640, 480)
    return scene, region


def millimetre_depth(depth_m):
    """Return the depth as a 16UC1 camera sends it (the synthetic camera's encoding), in metres."""
    mm = np.round(depth_m * 1000.0)
    return np.where(mm > 0, mm / 1000.0, np.nan).astype(np.float32)


def test_demo_target_points_lie_on_its_surface(demo):
    from refseg_model.synth.motion import inside_true_box

    scene, region = demo
    k = Intrinsics.from_k(scene.K.ravel(), scene.width, scene.height)
    points = target_points(millimetre_depth(scene.depth_m), region.mask, k, scene.rgb)
    assert points.reason == "" and len(points) > 0.6 * region.mask.sum()
    u = np.rint(points.xyz[:, 0] * k.fx / points.xyz[:, 2] + k.cx).astype(int)
    v = np.rint(points.xyz[:, 1] * k.fy / points.xyz[:, 2] + k.cy).astype(int)
    assert region.mask[v, u].all()                    # every point comes from the target
    exact = scene.depth_m[v, u]
    assert np.abs(points.xyz[:, 2] - exact).max() <= 0.0005 + 1e-6   # the mm rounding
    inside = [inside_true_box(scene, 1, p, margin=0.002) for p in points.xyz[::25]]
    assert all(inside)


def test_demo_target_extent_matches_the_cup(demo):
    """Centre inside the cup's true box; width and height within 10 % of the true span.

    The erosion (``erode_px`` pixels off each side, 2 x 2 x z / f, about 7 mm here) and the
    2..98 percentile span (96 % of a uniform spread) are corrected for; what is left short is
    the thin handle, whose few points do not survive the percentiles (measured: width 0.98,
    height 0.95 of the truth, against 0.89 and 0.86 before the correction).
    """
    from refseg_model.synth.motion import inside_true_box, visible_surface

    scene, region = demo
    k = Intrinsics.from_k(scene.K.ravel(), scene.width, scene.height)
    geometry = target_geometry(millimetre_depth(scene.depth_m), region.mask, k, scene.rgb)
    e = geometry.extent
    assert inside_true_box(scene, 1, e.center)
    true_span = np.ptp(visible_surface(scene, 1), axis=0)
    for axis in (0, 1):
        assert 0.9 * true_span[axis] <= e.size[axis] <= 1.1 * true_span[axis]
    assert e.principal_sizes[0] <= np.linalg.norm(true_span) + 0.001
