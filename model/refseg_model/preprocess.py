"""Image preprocessing shared by training, evaluation and inference.

As in the released code of the paper (``util/im_processing.py`` of ``ronghanghu/text_objseg``,
``resize_and_pad``): an image is resized keeping its aspect ratio so it fits a ``size x size``
canvas (or a ``size_h x size`` one: an input of the camera's aspect wastes nothing on padding),
then **centred** on that canvas of zeros (the padding is split evenly, the extra pixel
going to the bottom / right). Predictions are mapped back by cropping the content and resizing it
to the original height and width (``resize_and_crop`` there). Pixels are RGB with the ImageNet mean
(123.68, 116.779, 103.939) subtracted, no scaling. Resizing uses OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

RGB_MEAN = (123.68, 116.779, 103.939)


@dataclass(frozen=True)
class Letterbox:
    """Where an image went on the network input, to undo it on a response map.

    The canvas is ``size_h x size`` (height x width); ``size_h`` equals ``size`` for the square
    input of the paper.
    """

    orig_h: int
    orig_w: int
    scale: float
    new_h: int
    new_w: int
    size: int
    pad_top: int
    pad_left: int
    size_h: int = 0

    def __post_init__(self) -> None:
        """Default ``size_h`` to ``size`` (a square canvas)."""
        if not self.size_h:
            object.__setattr__(self, "size_h", self.size)

    @classmethod
    def compute(cls, orig_h: int, orig_w: int, size: int, size_h: int | None = None
                ) -> Letterbox:
        """Lay out an ``orig_h x orig_w`` image on a ``size_h x size`` canvas (released code).

        ``size_h`` defaults to ``size``: the square canvas of the paper.
        """
        size_h = size if size_h is None else size_h
        if orig_h < 1 or orig_w < 1:
            raise ValueError(f"image must be at least 1x1, got {orig_h}x{orig_w}")
        if size < 1 or size_h < 1:
            raise ValueError(f"input size must be >= 1, got {size_h}x{size}")
        scale = min(size_h / orig_h, size / orig_w)
        new_h = min(size_h, max(1, int(round(orig_h * scale))))
        new_w = min(size, max(1, int(round(orig_w * scale))))
        return cls(orig_h, orig_w, scale, new_h, new_w, size,
                   (size_h - new_h) // 2, (size - new_w) // 2, size_h)

    @property
    def shape(self) -> tuple[int, int]:
        """The canvas as (height, width)."""
        return self.size_h, self.size

    def valid(self) -> np.ndarray:
        """Return a canvas-sized bool map, True on the image content (False on padding)."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.pad_top:self.pad_top + self.new_h, self.pad_left:self.pad_left + self.new_w] = True
        return out

    def to_dict(self) -> dict:
        """Return the fields as a JSON-able dict."""
        return asdict(self)


def aspect_input_shape(height: int, width: int, pixels: int, stride: int) -> tuple[int, int]:
    """Return a network input (height, width) of the image's aspect with about ``pixels`` pixels.

    Both sides are multiples of ``stride`` (at least one cell); of the candidates around the exact
    shape, the one whose aspect is closest to the image's wins (then the one nearest ``pixels``).
    A 640x480 frame at 320*240 pixels gives 240x320; a 1280x720 one 208x368.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1, got {height}x{width}")
    if pixels < stride * stride or stride < 1:
        raise ValueError(f"pixel budget {pixels} is too small for stride {stride}")
    aspect = width / height
    exact_w = (pixels * aspect) ** 0.5
    best = None
    for cells_w in {max(1, int(exact_w // stride) + d) for d in (-1, 0, 1)}:
        w = cells_w * stride
        for cells_h in {max(1, int(w / aspect // stride) + d) for d in (0, 1)}:
            h = cells_h * stride
            key = (round(abs(np.log((w / h) / aspect)), 3), abs(h * w - pixels))
            if best is None or key < best[0]:
                best = (key, (h, w))
    return best[1]


def _check_image(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"expected an HxWx3 RGB image, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {rgb.dtype}")


def _resize(array: np.ndarray, h: int, w: int, interpolation: int | None = None) -> np.ndarray:
    if interpolation is None:
        shrinking = h < array.shape[0] or w < array.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    if array.shape[0] == h and array.shape[1] == w:
        return array.copy()
    if interpolation == cv2.INTER_AREA:
        array = _block_mean(array, h, w)
    return cv2.resize(array, (w, h), interpolation=interpolation)


def _block_mean(array: np.ndarray, h: int, w: int) -> np.ndarray:
    """Shrink ``array`` by the largest whole factor k that keeps it at least ``h x w``.

    The means of k x k blocks are OpenCV's fast path of area interpolation; the area resize left
    to do is then one of a factor under 2 on k^2 times fewer pixels (1280x720 to 440x248: 2.7 ->
    1.1 ms on 2 AVX2 cores). Pixels that straddle a block edge move a little against one area
    resize (on the scenes of ``data/eval_720``: mean 0.36 of 255, up to 26 at sharp edges;
    present-target prec@0.5 unchanged). ``array`` itself when no whole factor divides it.
    """
    k = min(array.shape[0] // h, array.shape[1] // w)
    while k >= 2 and (array.shape[0] % k or array.shape[1] % k):
        k -= 1
    if k < 2:
        return array
    return cv2.resize(array, (array.shape[1] // k, array.shape[0] // k),
                      interpolation=cv2.INTER_AREA)


def letterbox(rgb: np.ndarray, size: int, size_h: int | None = None
              ) -> tuple[np.ndarray, Letterbox]:
    """Resize ``rgb`` (HxWx3 uint8) keeping aspect and centre it on a zero canvas.

    The canvas is ``size x size``, or ``size_h x size`` when ``size_h`` is given. Returns the
    canvas-sized x 3 uint8 image and the :class:`Letterbox` to undo it. Shrinking uses area
    interpolation, enlarging bilinear.
    """
    _check_image(rgb)
    meta = Letterbox.compute(rgb.shape[0], rgb.shape[1], size, size_h)
    out = np.zeros((*meta.shape, 3), dtype=np.uint8)
    resized = _resize(np.ascontiguousarray(rgb), meta.new_h, meta.new_w)
    out[meta.pad_top:meta.pad_top + meta.new_h, meta.pad_left:meta.pad_left + meta.new_w] = resized
    return out, meta


def letterbox_mask(mask: np.ndarray, size: int, size_h: int | None = None) -> np.ndarray:
    """Lay out an HxW mask like :func:`letterbox` does its image (nearest neighbour): bool."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {mask.shape}")
    meta = Letterbox.compute(mask.shape[0], mask.shape[1], size, size_h)
    resized = _resize(mask.astype(np.uint8), meta.new_h, meta.new_w, cv2.INTER_NEAREST)
    out = np.zeros(meta.shape, dtype=bool)
    out[meta.pad_top:meta.pad_top + meta.new_h,
        meta.pad_left:meta.pad_left + meta.new_w] = resized > 0
    return out


LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Rec. 601
EXPOSURE_GAIN_LIMITS = (0.6, 1.7)


def mean_luma(rgb: np.ndarray) -> float:
    """Return the mean luma (0-255) of an HxWx3 uint8 RGB image (every pixel).

    Luma is linear in R, G and B, so its mean is that of the channel means (``cv2.mean``, one
    pass without a float copy: 0.2 ms on a 1280x720 frame).
    """
    _check_image(rgb)
    return float(np.dot(cv2.mean(rgb)[:3], LUMA_WEIGHTS))


def exposure_gain(level: float, luma_range: Sequence[float]) -> float:
    """Return the gain that brings mean luma ``level`` into ``luma_range`` (1.0 inside it).

    The gain moves the level to the range's nearest edge and is clipped to
    :data:`EXPOSURE_GAIN_LIMITS`: a nearly black frame is not amplified into noise.
    """
    low, high = luma_range
    target = min(max(level, low), high)
    return float(np.clip(target / max(level, 1.0), *EXPOSURE_GAIN_LIMITS))


def compensate_exposure(rgb: np.ndarray, luma_range: Sequence[float] | None,
                        level: float | None = None) -> np.ndarray:
    """Return ``rgb`` with its exposure brought into ``luma_range`` (``rgb`` itself if inside).

    ``level`` is the frame's mean luma (:func:`mean_luma` of ``rgb`` when ``None``; pass that
    of the full frame when ``rgb`` is its resized copy). An over-exposed frame is darkened, so
    clipped highlights stay clipped; an under-exposed one is brightened and clipped at 255.
    """
    if luma_range is None:
        return rgb
    gain = exposure_gain(mean_luma(rgb) if level is None else level, luma_range)
    if abs(gain - 1.0) < 0.02:
        return rgb
    return np.clip(rgb.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def normalize(image: np.ndarray, mean: tuple[float, float, float] = RGB_MEAN) -> np.ndarray:
    """Turn an HxWx3 uint8 RGB image into a 3xHxW float32 array with ``mean`` subtracted."""
    _check_image(image)
    chw = image.astype(np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(chw - np.asarray(mean, dtype=np.float32)[:, None, None])


def normalize_batch(images: torch.Tensor, mean: tuple[float, float, float] = RGB_MEAN
                    ) -> torch.Tensor:
    """Turn a B x H x W x 3 uint8 tensor into B x 3 x H x W float32 with ``mean`` subtracted.

    The same numbers as :func:`normalize`, one copy instead of three, on the tensor's device (a
    GPU receives uint8, a quarter of the bytes); the result is channels-last in memory (the
    layout of an HxWx3 image), which the CPU's fast path wants anyway.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a B x H x W x 3 uint8 tensor, got {tuple(images.shape)} "
                         f"{images.dtype}")
    offset = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return images.permute(0, 3, 1, 2).float().sub_(offset)


def unletterbox(map2d: np.ndarray, meta: Letterbox) -> np.ndarray:
    """Map a canvas-sized response map back to ``orig_h x orig_w`` (float32).

    The content area is cropped out and resized bilinearly; threshold the result afterwards.
    """
    map2d = np.asarray(map2d)
    if map2d.shape != meta.shape:
        raise ValueError(f"expected a {meta.size_h}x{meta.size} map, got shape {map2d.shape}")
    content = map2d[meta.pad_top:meta.pad_top + meta.new_h,
                    meta.pad_left:meta.pad_left + meta.new_w].astype(np.float32)
    return _resize(np.ascontiguousarray(content), meta.orig_h, meta.orig_w, cv2.INTER_LINEAR)


def coarse_labels(mask: np.ndarray, stride: int) -> np.ndarray:
    """Return the ``ceil(H/stride) x ceil(W/stride)`` float32 label of the low-res stage.

    A cell is foreground (1.0) if any of its pixels is, as the released code's
    ``downscale_local_mean(mask) > 0``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {mask.shape}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    h, w = mask.shape
    ch, cw = -(-h // stride), -(-w // stride)
    padded = np.zeros((ch * stride, cw * stride), dtype=bool)
    padded[:h, :w] = mask > 0
    return padded.reshape(ch, stride, cw, stride).any(axis=(1, 3)).astype(np.float32)
