"""Property tests of the 3D target point: projection round trip, invalid depth -> no point."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refseg_node.perception.geometry import Intrinsics, back_project, target_point

SETTINGS = settings(max_examples=300, deadline=None)
intrinsics = st.builds(
    Intrinsics, fx=st.floats(50, 5000), fy=st.floats(50, 5000), cx=st.floats(0, 1920),
    cy=st.floats(0, 1080))


def project(point, k):
    """Pinhole projection of a point in the optical frame to pixel (u, v)."""
    x, y, z = point
    return k.fx * x / z + k.cx, k.fy * y / z + k.cy


@SETTINGS
@given(k=intrinsics, u=st.floats(-100, 2000), v=st.floats(-100, 1200), z=st.floats(0.05, 50))
def test_back_project_then_project_is_identity(k, u, v, z):
    point = back_project(u, v, z, k)
    assert point[2] == z
    pu, pv = project(point, k)
    assert math.isclose(pu, u, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(pv, v, rel_tol=1e-9, abs_tol=1e-6)


@st.composite
def scenes(draw):
    """Draw a small depth image with a rectangular target at one depth, plus intrinsics."""
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    y0, x0 = draw(st.integers(0, h - 4)), draw(st.integers(0, w - 4))
    y1, x1 = draw(st.integers(y0 + 4, h)), draw(st.integers(x0 + 4, w))
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = True
    z = draw(st.floats(0.1, 20))
    background = draw(st.floats(0.1, 20))
    depth = np.full((h, w), background, np.float32)
    depth[region] = z
    k = Intrinsics(draw(st.floats(50, 2000)), draw(st.floats(50, 2000)), w / 2, h / 2, w, h)
    return depth, region, k, np.float32(z)


@SETTINGS
@given(scenes())
def test_target_point_lies_on_the_ray_of_the_centroid(scene):
    depth, region, k, z = scene
    result = target_point(depth, region, k)
    assert result.point is not None, result.reason
    rows, cols = np.nonzero(region)
    assert math.isclose(result.point[2], float(z), rel_tol=1e-6)
    u, v = project(result.point, k)
    assert math.isclose(u, cols.mean(), abs_tol=1e-6) and math.isclose(v, rows.mean(),
                                                                         abs_tol=1e-6)


@SETTINGS
@given(scenes(), st.sampled_from([np.nan, 0.0, -1.0, np.inf, -np.inf]), st.booleans())
def test_invalid_depth_gives_no_point(scene, bad, keep_a_few):
    depth, region, k, _ = scene
    depth = depth.copy()
    depth[region] = bad
    if keep_a_few:  # fewer valid pixels than needed (at least 10 and 20 % of the target)
        ys, xs = np.nonzero(region)
        depth[ys[:5], xs[:5]] = 1.0
    result = target_point(depth, region, k)
    assert result.point is None and result.reason
    assert result.valid_pixels <= 5


@SETTINGS
@given(scenes())
def test_misaligned_depth_or_intrinsics_give_no_point(scene):
    depth, region, k, _ = scene
    assert target_point(depth[:-1], region, k).point is None
    other = Intrinsics(k.fx, k.fy, k.cx, k.cy, k.width + 1, k.height)
    assert target_point(depth, region, other).point is None
    assert target_point(depth, np.zeros_like(region), k).point is None
