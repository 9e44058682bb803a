"""Tests of letterboxing, normalisation, un-letterboxing and the low-res labels."""

import cv2
import numpy as np
import pytest
import torch

from refseg_model.preprocess import (
    RGB_MEAN,
    Letterbox,
    coarse_labels,
    letterbox,
    letterbox_mask,
    mean_luma,
    normalize,
    normalize_batch,
    unletterbox,
)


def test_letterbox_centres_content_like_released_code():
    rgb = np.full((30, 60, 3), 200, dtype=np.uint8)
    out, meta = letterbox(rgb, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (meta.new_h, meta.new_w, meta.scale) == (32, 64, 64 / 60)
    # released resize_and_pad: pad = floor((64 - 32) / 2) = 16 rows on top
    assert meta.pad_top == 16 and meta.pad_left == 0
    assert (out[:16] == 0).all() and (out[48:] == 0).all()
    assert (out[16:48] == 200).all()
    assert meta.valid().sum() == 32 * 64 and meta.valid()[16:48].all()


def test_letterbox_odd_padding_goes_bottom_right():
    meta = Letterbox.compute(10, 7, 20)
    assert (meta.new_h, meta.new_w) == (20, 14)
    assert (meta.pad_top, meta.pad_left) == (0, 3)  # 6 columns of padding: 3 left, 3 right
    meta = Letterbox.compute(7, 9, 4)
    assert (meta.new_h, meta.new_w, meta.pad_top) == (3, 4, 0)  # round(7*4/9) = 3, pad 1 -> 0 top


def test_letterbox_rejects_bad_images():
    with pytest.raises(ValueError, match="HxWx3"):
        letterbox(np.zeros((4, 4), np.uint8), 8)
    with pytest.raises(ValueError, match="uint8"):
        letterbox(np.zeros((4, 4, 3), np.float32), 8)


def test_letterbox_mask_is_nearest_and_aligned_with_image():
    mask = np.zeros((20, 40), dtype=bool)
    mask[5:10, 10:20] = True
    boxed = letterbox_mask(mask, 80)
    assert boxed.dtype == bool and boxed.shape == (80, 80)
    # scale 2, content rows 20..59
    expected = np.zeros((80, 80), dtype=bool)
    expected[20 + 10:20 + 20, 20:40] = True
    np.testing.assert_array_equal(boxed, expected)


def test_normalize_subtracts_rgb_mean_chw():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = 255
    out = normalize(img)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 255 - RGB_MEAN[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], -RGB_MEAN[1], rtol=1e-6)
    np.testing.assert_allclose(out[2], -RGB_MEAN[2], rtol=1e-6)


def test_normalize_batch_gives_normalize_numbers_in_channels_last_memory():
    images = np.random.default_rng(1).integers(0, 256, (2, 6, 10, 3), dtype=np.uint8)
    out = normalize_batch(torch.from_numpy(images))
    assert out.shape == (2, 3, 6, 10) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    for row in range(2):
        assert np.array_equal(out[row].numpy(), normalize(images[row]))
    with pytest.raises(ValueError, match="uint8"):
        normalize_batch(torch.zeros(1, 6, 10, 3))


def _smooth_frame(height, width, seed=0):
    """Return a camera-like frame: low-frequency colour fields plus a little sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 40, width // 40, 3), dtype=np.uint8)
    frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(frame + rng.integers(-3, 4, frame.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape,canvas", [((720, 1280), (248, 440)), ((1080, 1920), (248, 440)),
                                          ((480, 640), (288, 384)), ((721, 1283), (248, 440))])
def test_letterbox_shrinks_about_like_one_area_resize(shape, canvas):
    """Block means first (the fast path) move an area resize's pixels a little.

    Without a whole factor (640x480 to 384x288, a prime-sized frame) it is one area resize.
    """
    frame = _smooth_frame(*shape)
    boxed, meta = letterbox(frame, canvas[1], canvas[0])
    content = boxed[meta.pad_top:meta.pad_top + meta.new_h,
                    meta.pad_left:meta.pad_left + meta.new_w]
    direct = cv2.resize(frame, (meta.new_w, meta.new_h), interpolation=cv2.INTER_AREA)
    diff = np.abs(content.astype(int) - direct)
    if min(shape[0] // meta.new_h, shape[1] // meta.new_w) < 2 or shape == (721, 1283):
        assert diff.max() == 0
    else:
        assert 0 < diff.mean() < 0.5


def test_mean_luma_is_the_rec601_mean_of_every_pixel():
    frame = _smooth_frame(90, 160, seed=3)
    want = (frame.astype(np.float64) @ [0.299, 0.587, 0.114]).mean()
    assert mean_luma(frame) == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("shape", [(30, 60), (60, 30), (37, 53), (64, 64), (100, 40)])
def test_unletterbox_inverts_letterbox_mask(shape):
    rng = np.random.default_rng(0)
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    mask[h // 4:3 * h // 4, w // 3:2 * w // 3] = True
    _, meta = letterbox(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), 64)
    back = unletterbox(letterbox_mask(mask, 64).astype(np.float32), meta) >= 0.5
    assert back.shape == shape
    inter = np.logical_and(back, mask).sum()
    union = np.logical_or(back, mask).sum()
    assert inter / union > 0.8


def test_unletterbox_checks_shape():
    meta = Letterbox.compute(10, 20, 32)
    with pytest.raises(ValueError, match="32x32"):
        unletterbox(np.zeros((16, 16)), meta)


def test_coarse_labels_any_pixel_rule():
    mask = np.zeros((64, 64), dtype=bool)
    mask[0, 0] = True  # one pixel makes cell (0, 0) foreground
    mask[40:64, 33:35] = True  # cells (1, 1)
    labels = coarse_labels(mask, 32)
    np.testing.assert_array_equal(labels, np.array([[1, 0], [0, 1]], np.float32))
    assert labels.dtype == np.float32
    assert coarse_labels(np.ones((70, 33), bool), 32).shape == (3, 2)  # ceil
    assert coarse_labels(np.zeros((64, 64), bool), 32).sum() == 0


def test_rectangular_canvas_takes_a_4_3_frame_without_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out, meta = letterbox(rgb, 320, 240)
    assert out.shape == (240, 320, 3) and meta.shape == (240, 320)
    assert (meta.pad_top, meta.pad_left, meta.new_h, meta.new_w) == (0, 0, 240, 320)
    assert meta.valid().all()
    back = unletterbox(np.ones((240, 320), np.float32), meta)
    assert back.shape == (480, 640)


def test_rectangular_canvas_pads_a_portrait_frame_and_round_trips_a_mask():
    meta = Letterbox.compute(640, 480, 320, 240)
    assert (meta.new_h, meta.new_w, meta.pad_left, meta.pad_top) == (240, 180, 70, 0)
    mask = np.zeros((640, 480), bool)
    mask[100:300, 50:250] = True
    boxed = letterbox_mask(mask, 320, 240)
    assert boxed.shape == (240, 320) and not boxed[:, :70].any()
    back = unletterbox(boxed.astype(np.float32), meta) >= 0.5
    assert (back & mask).sum() / (back | mask).sum() > 0.95
    with pytest.raises(ValueError, match="240x320"):
        unletterbox(np.zeros((320, 320)), meta)


def test_exposure_gain_moves_only_levels_outside_the_range_to_its_edge():
    from refseg_model.preprocess import EXPOSURE_GAIN_LIMITS, exposure_gain

    assert exposure_gain(93.0, (93, 150)) == exposure_gain(120.0, (93, 150)) == 1.0
    assert exposure_gain(200.0, (93, 150)) == pytest.approx(0.75)     # over-exposed: to 150
    assert exposure_gain(62.0, (93, 150)) == pytest.approx(1.5)       # under-exposed: to 93
    assert exposure_gain(10.0, (93, 150)) == EXPOSURE_GAIN_LIMITS[1]  # black: not to noise
    assert exposure_gain(0.0, (93, 150)) == EXPOSURE_GAIN_LIMITS[1]


def test_compensate_exposure_brings_a_dark_or_bright_frame_to_the_range_edge():
    from refseg_model.preprocess import compensate_exposure, exposure_gain, mean_luma

    rng = np.random.default_rng(0)
    scene = rng.integers(40, 200, (60, 80, 3), dtype=np.uint8)
    assert compensate_exposure(scene, None) is scene
    level = mean_luma(scene)
    assert 93 < level < 150
    assert compensate_exposure(scene, (93, 150)) is scene             # a normal frame: as it is
    dark = (scene * 0.5).astype(np.uint8)
    bright = np.clip(scene * 1.6, 0, 255).astype(np.uint8)
    for frame, edge in ((dark, 93.0), (bright, 150.0)):
        out = compensate_exposure(frame, (93, 150))
        assert out.dtype == np.uint8 and out.shape == frame.shape
        assert mean_luma(out) == pytest.approx(edge, abs=1.5)
    # the gain of the full frame applied to a copy of another size (what the Segmenter does)
    copy = dark[::2, ::2]
    gain = exposure_gain(mean_luma(dark), (93, 150))
    assert gain != exposure_gain(mean_luma(copy), (93, 150))
    small = compensate_exposure(copy, (93, 150), level=mean_luma(dark))
    assert mean_luma(small) == pytest.approx(gain * mean_luma(copy), abs=0.6)
