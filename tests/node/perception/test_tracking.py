"""The mask tracker (perception.tracking) on moved pictures and on a panning synthetic camera."""

import cv2
import numpy as np
import pytest

from refseg_node.perception.tracking import MaskTracker, TrackerSettings, to_gray

W, H = 320, 240


def iou(a, b):
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


@pytest.fixture(scope="module")
def texture():
    """Return a picture with corners everywhere (blurred noise blocks)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (H // 8, W // 8), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST),
                            (3, 3), 0)


def moved(image, dx, dy, angle=0.0, scale=1.0):
    m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (W, H), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT), m


def test_follows_a_translating_and_turning_picture(texture):
    mask = np.zeros((H, W), bool)
    mask[80:160, 100:200] = True
    tracker = MaskTracker()
    assert tracker.start(texture, mask)
    for i in range(1, 11):
        frame, m = moved(texture, 3.0 * i, -1.5 * i, angle=0.8 * i)
        result = tracker.step(frame)
        assert result.mask is not None, result.reason
        truth = cv2.warpAffine(mask.astype(np.uint8), m, (W, H), flags=cv2.INTER_NEAREST) > 0
        assert iou(result.mask, truth) > 0.95
        assert result.age == i and result.features >= 10
        np.testing.assert_allclose(result.transform, m, atol=0.5 + 0.01 * i)


def test_probabilities_travel_with_the_mask(texture):
    mask = np.zeros((H, W), bool)
    mask[80:160, 100:200] = True
    probs = np.where(mask, 0.9, 0.1).astype(np.float32)
    tracker = MaskTracker()
    tracker.start(texture, mask, probs)
    result = tracker.step(moved(texture, 10, 0)[0])
    assert result.probs[120, 150] == pytest.approx(0.9, abs=1e-3)
    assert result.probs[120, 105] == pytest.approx(0.1, abs=1e-3)   # left 10 px behind


def test_a_mask_without_corners_is_not_tracked():
    flat = np.full((H, W), 120, np.uint8)
    mask = np.zeros((H, W), bool)
    mask[50:100, 50:100] = True
    tracker = MaskTracker()
    assert not tracker.start(flat, mask) and not tracker.active
    assert "no mask" in tracker.step(flat).reason


def test_track_is_lost_on_an_unrelated_frame_and_when_too_old(texture):
    mask = np.zeros((H, W), bool)
    mask[80:160, 100:200] = True
    tracker = MaskTracker(TrackerSettings(max_age=3))
    tracker.start(texture, mask)
    other = np.random.default_rng(9).integers(0, 256, (H, W), dtype=np.uint8)
    lost = tracker.step(other)
    assert lost.mask is None and "corners" in lost.reason and not tracker.active
    tracker.start(texture, mask)
    for _ in range(3):
        assert tracker.step(texture).mask is not None
    assert "max_age" in tracker.step(texture).reason
    tracker.start(texture, mask)
    assert "size changed" in tracker.step(texture[:, :-2]).reason


def test_a_mask_that_leaves_the_picture_is_lost(texture):
    mask = np.zeros((H, W), bool)
    mask[100:140, 280:318] = True
    tracker = MaskTracker(TrackerSettings(margin_px=30))
    assert tracker.start(texture, mask)
    padded = cv2.copyMakeBorder(texture, 0, 0, 200, 0, cv2.BORDER_REFLECT)
    result = None
    for shift in range(10, 200, 10):  # the picture slides right: the mask leaves at the edge
        result = tracker.step(np.ascontiguousarray(padded[:, 200 - shift:200 - shift + W]))
        if result.mask is None:
            break
    assert result.mask is None and result.reason


def test_refuses_bad_settings_and_masks(texture):
    with pytest.raises(ValueError):
        TrackerSettings(min_features=300)
    with pytest.raises(ValueError, match="not the size"):
        MaskTracker().start(texture, np.zeros((10, 10), bool))
    assert to_gray(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5)


def test_keeps_the_demo_cup_over_a_camera_pan():
    """Key frame: the true mask of the left red cup; then a 2-second pan at 10 Hz."""
    from refseg_model.synth import make_demo_scene
    from refseg_model.synth.motion import pan_offsets, render_view

    scene, _, _ = make_demo_scene(0, W, H)
    angles = pan_offsets(4.0, 4.0, 10.0)[:21]     # 0 -> 4 -> 0 degrees... half a period
    views = [render_view(scene, a, noise_seed=i) for i, a in enumerate(angles)]
    moved_px = np.abs(np.diff([np.nonzero(v.object_mask(1))[1].mean() for v in views])).sum()
    assert moved_px > 20                           # the cup does move in the picture
    tracker = MaskTracker()
    assert tracker.start(to_gray(views[0].rgb), views[0].object_mask(1))
    ious = []
    for view in views[1:]:
        result = tracker.step(to_gray(view.rgb))
        assert result.mask is not None, result.reason
        ious.append(iou(result.mask, view.object_mask(1)))
    assert min(ious) > 0.85, ious


def test_stream_catches_up_from_a_late_answer(texture):
    """The model answers frame 2 while frames 3..6 have arrived; frame 7 is tracked from it."""
    from refseg_node.perception.tracking import TrackedStream

    mask = np.zeros((H, W), bool)
    mask[80:160, 100:200] = True
    frames = {i: moved(texture, 4.0 * i, 1.0 * i) for i in range(1, 9)}
    stream = TrackedStream(history=10)
    for i in range(1, 7):
        stream.add(i, frames[i][0])
        assert stream.track(i, frames[i][0]) is None        # nothing to carry yet
    key = cv2.warpAffine(mask.astype(np.uint8), frames[2][1], (W, H),
                         flags=cv2.INTER_NEAREST) > 0
    assert stream.answer(2, frames[2][0], key, None, tag="query")
    carried = stream.track(7, frames[7][0])
    assert carried is not None and carried.age == 5 and carried.tag == "query"
    truth = cv2.warpAffine(mask.astype(np.uint8), frames[7][1], (W, H),
                           flags=cv2.INTER_NEAREST) > 0
    assert iou(carried.mask, truth) > 0.95
    assert stream.track(7, frames[7][0]) is None               # not twice onto one frame
    assert stream.track(8, frames[8][0]).age == 6
    assert not stream.answer(8, frames[8][0], np.zeros((H, W), bool), None)
    assert "nothing" in stream.lost_reason and not stream.active
    with pytest.raises(ValueError):
        TrackedStream(history=0)


def test_stream_forgets_old_frames(texture):
    from refseg_node.perception.tracking import TrackedStream

    stream = TrackedStream(history=3)
    for i in range(10):
        stream.add(i, texture)
    assert sorted(stream._frames) == [7, 8, 9]


def test_stream_gives_every_frame_of_a_pan_a_mask_from_late_answers():
    """The node's rules over the demo pan: the model takes a frame and answers it 10 frames later.

    Its answer (here the true mask, the tracker as if the model were perfect) is caught up
    through the frames tracked since, and every frame the model does not take is answered with
    the mask carried from the last answer (11 to 19 frames old). Measured at 320x240: IoU 0.948
    at worst, 0.966 on average; the bound (0.85, the issue asks 0.7 of the whole node) leaves
    room for LK/RANSAC drift over a chain of up to 19 frames and for other OpenCV builds.
    """
    from refseg_model.synth import make_demo_scene
    from refseg_model.synth.motion import pan_offsets, render_view
    from refseg_node.perception.tracking import TrackedStream

    scene, _, _ = make_demo_scene(0, W, H)
    angles = pan_offsets(4.0, 4.0, 10.0)
    views = [render_view(scene, angles[i % len(angles)], noise_seed=i) for i in range(35)]
    grays = [to_gray(v.rgb) for v in views]
    stream, job, answered = TrackedStream(), None, {}
    for i in range(len(views)):
        if job is not None and i - job >= 10:                # the answer to frame ``job`` comes
            assert stream.answer(job, grays[job], views[job].object_mask(1), None, tag="q"), \
                stream.lost_reason
            answered[job] = (views[job].object_mask(1), 0)
            job = None
        if job is None:
            job = i                                          # the model takes this frame
            continue
        if stream.active:
            carried = stream.track(i, grays[i])
            assert carried is not None, stream.lost_reason
            answered[i] = (carried.mask, carried.age)
    window = range(10, 30)                                   # after the first answer
    assert all(i in answered for i in window)                # a mask for every frame
    ages = [answered[i][1] for i in window]
    assert {a for a in ages if a} == set(range(11, 20))      # carried 11..19 frames
    ious = [iou(answered[i][0], views[i].object_mask(1)) for i in window]
    assert min(ious) >= 0.85, ious


@pytest.mark.parametrize("box", [(100, 160, 120, 200), (0, 40, 0, 60), (200, 240, 260, 320)])
def test_corners_are_those_of_the_whole_frame(texture, box):
    """The tracker looks for corners in the mask's box only: the same corners as the whole frame."""
    gray = to_gray(texture)
    mask = np.zeros(gray.shape, bool)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = True
    s = TrackerSettings()
    size = 2 * s.margin_px + 1
    region = cv2.dilate(mask.astype(np.uint8),
                        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    whole = cv2.goodFeaturesToTrack(gray, s.max_features, s.quality, s.min_distance,
                                    mask=region * 255, blockSize=5)
    tracker = MaskTracker(s)
    assert tracker.start(gray, mask)
    corners = tracker._points
    assert corners.shape == whole.shape
    assert {tuple(p) for p in corners.reshape(-1, 2).tolist()} == \
        {tuple(p) for p in whole.reshape(-1, 2).tolist()}
