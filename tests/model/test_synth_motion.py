"""Other views of a synthetic scene (refseg_model.synth.motion): a panning camera, true geometry."""

import numpy as np
import pytest

from refseg_model.synth import generate_scene, make_demo_scene
from refseg_model.synth.motion import (
    inside_true_box,
    pan_offsets,
    panned,
    render_view,
    true_box,
    visible_surface,
)

W, H = 160, 120


@pytest.fixture(scope="module")
def demo():
    return make_demo_scene(0, W, H)[0]


def test_the_unpanned_view_is_the_scene(demo):
    view = render_view(demo, 0.0)
    np.testing.assert_array_equal(view.labels, demo.labels)
    np.testing.assert_array_equal(view.depth_m, demo.depth_m)
    assert np.abs(view.rgb.astype(int) - demo.rgb).mean() < 12   # other noise and grain phase
    again = render_view(demo, 0.0)
    np.testing.assert_array_equal(again.rgb, view.rgb)             # deterministic


def test_views_share_textures_and_differ_in_noise(demo):
    a, b = render_view(demo, 1.0, noise_seed=0), render_view(demo, 1.0, noise_seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    diff = a.rgb.astype(int) - b.rgb
    assert 0 < np.abs(diff).mean() < 5                            # noise only (sigma 2)


def test_a_pan_turns_the_camera_about_its_centre(demo):
    cam = demo.world.camera
    turned = panned(cam, 5.0)
    np.testing.assert_array_equal(turned.C, cam.C)
    np.testing.assert_allclose(turned.R.T @ turned.R, np.eye(3), atol=1e-12)
    cos = (np.trace(cam.R.T @ turned.R) - 1) / 2
    assert np.degrees(np.arccos(cos)) == pytest.approx(5.0)
    # turning left (positive) moves the picture's content to the right
    left = render_view(demo, 3.0).object_mask(1)
    assert np.nonzero(left)[1].mean() > np.nonzero(demo.object_mask(1))[1].mean() + 3


def test_pan_offsets_sweep_there_and_back():
    angles = pan_offsets(4.0, 2.0, 10.0)
    assert len(angles) == 20 and angles[0] == 0.0
    assert max(angles) == pytest.approx(4.0) and min(angles) == pytest.approx(-4.0)
    with pytest.raises(ValueError):
        pan_offsets(4.0, 0.0, 10.0)


def test_true_geometry_of_the_demo_cup(demo):
    obj = demo.objects[0]
    corners = true_box(demo, 1)
    assert corners.shape == (8, 3)
    assert inside_true_box(demo, 1, obj.center_3d)
    assert not inside_true_box(demo, 1, np.asarray(obj.center_3d) + [0.0, 0.0, 0.2])
    surface = visible_surface(demo, 1)
    assert len(surface) > 9 * demo.object_mask(1).sum() * 0.9     # 3 x 3 rays a pixel
    assert all(inside_true_box(demo, 1, p, margin=1e-6) for p in surface[::50])
    # the visible surface is where the depth image says it is
    k = demo.K
    u = np.rint(surface[:, 0] * k[0, 0] / surface[:, 2] + k[0, 2]).astype(int)
    v = np.rint(surface[:, 1] * k[1, 1] / surface[:, 2] + k[1, 2]).astype(int)
    seen = demo.object_mask(1)[v, u]
    assert np.median(np.abs(surface[seen, 2] - demo.depth_m[v[seen], u[seen]])) < 0.002


def test_scenes_without_a_world_are_refused():
    scene = generate_scene(1, W, H)
    scene.world = None
    with pytest.raises(ValueError, match="no world"):
        render_view(scene)


def test_rotation_homography_moves_a_mask_as_the_pan_moves_the_picture(demo):
    import cv2

    from refseg_model.synth.motion import rotation_homography

    a, b = render_view(demo, 0.0), render_view(demo, 3.0)
    h = rotation_homography(demo.K, a.camera.R, b.camera.R)
    moved = cv2.warpPerspective(a.object_mask(1).astype(np.uint8), h, (W, H),
                                flags=cv2.INTER_NEAREST) > 0
    truth = b.object_mask(1)
    assert (moved & truth).sum() / (moved | truth).sum() > 0.9
    np.testing.assert_allclose(rotation_homography(demo.K, a.camera.R, a.camera.R), np.eye(3),
                               atol=1e-12)
