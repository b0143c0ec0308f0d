"""Image corruption families for FM16 common corruption, in numpy alone.

The families follow the spirit of ImageNet-C (Hendrycks & Dietterich 2019) and MNIST-C
(Mu & Gilmer 2019): five groups (noise, blur, weather, digital, geometric), each family at
five severities. They are written afresh for small images (8x8 to a few hundred pixels a
side) rather than ported: parameters that are lengths in pixels are given for a 28-pixel
image and scaled by the square root of the image's size relative to 28 (:func:`_px`), a
compromise between keeping the pixel size (too weak on 8x8 digits, whose pixels are already
coarse) and keeping the share of the image (too strong there).

Contract: ``images`` is a float array ``(n, C, H, W)`` with ``C`` 1 or 3 and values in
``[low, high]``; every family works on it normalised to [0, 1] and returns a new array of
the same shape and dtype, clipped to ``[low, high]``. Everything random comes from the
given ``numpy.random.Generator``, drawn in a fixed order and in the same amount at every
severity, so one seed gives the same output bit for bit. Work is vectorised over the
batch: no family loops over images.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ....errors import UsageError

SEVERITIES = (1, 2, 3, 4, 5)
GROUPS = ("noise", "blur", "weather", "digital", "geometric")

#: A family's work: (images in [0, 1] as float64, severity index 0..4, rng) -> images.
Kernel = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ImageCorruption:
    """One corruption family: its name, its group and the function that does the work."""

    name: str
    group: str
    kernel: Kernel = dataclasses.field(repr=False)

    @property
    def description(self) -> str:
        """First line of the family's docstring: what real-world effect it models."""
        return (self.kernel.__doc__ or "").strip().splitlines()[0]

    def apply(self, images, severity: int, rng, low: float, high: float) -> np.ndarray:
        """The corrupted copy of ``images`` at ``severity`` (1..5), in ``[low, high]``."""
        images = _validated(images, severity, rng, low, high)
        if images.shape[0] == 0:
            return images.copy()
        span = float(high) - float(low)
        unit = (images.astype(np.float64) - low) / span
        out = np.clip(self.kernel(unit, severity - 1, rng), 0.0, 1.0)
        return np.clip(out * span + low, low, high).astype(images.dtype)


def corrupt_images(images, family: str, severity: int, rng, low: float, high: float) -> np.ndarray:
    """``images`` corrupted by the named family at ``severity`` (1..5); see the module docstring."""
    if family not in IMAGE_FAMILIES:
        raise UsageError(f"unknown image corruption {family!r}; known: {', '.join(IMAGE_FAMILIES)}")
    return IMAGE_FAMILIES[family].apply(images, severity, rng, low, high)


def _validated(images, severity, rng, low, high) -> np.ndarray:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise UsageError(f"corruption severity must be an integer from 1 to 5, got {severity!r}")
    if not isinstance(rng, np.random.Generator):
        raise UsageError("corruptions need a numpy.random.Generator (numpy.random.default_rng(seed))")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UsageError(f"images must have shape (n, C, H, W) with C 1 or 3, got {images.shape}")
    if images.shape[2] < 2 or images.shape[3] < 2:
        raise UsageError(f"images must be at least 2x2 pixels, got {images.shape[2]}x{images.shape[3]}")
    if not np.issubdtype(images.dtype, np.floating):
        raise UsageError(f"images must be a float array, got {images.dtype}")
    if not (np.isfinite(low) and np.isfinite(high) and float(low) < float(high)):
        raise UsageError(f"the value range must be finite with low < high, got [{low}, {high}]")
    if images.size:
        if not np.isfinite(images).all():
            raise UsageError("images contain NaN or infinite values")
        slack = 1e-6 * (float(high) - float(low))
        if images.min() < low - slack or images.max() > high + slack:
            raise UsageError(f"image values lie outside the declared range [{low}, {high}]: "
                             f"[{images.min():g}, {images.max():g}]")
    return images


# ---------------------------------------------------------------------------------------
# Shared tools: sizes, resampling, filtering, smooth random fields.

def _px(value_at_28: float, image: np.ndarray) -> float:
    """A length in pixels given for a 28-pixel image, scaled to this image's smaller side."""
    return value_at_28 * np.sqrt(min(image.shape[2], image.shape[3]) / 28.0)


def _sample(images: np.ndarray, ys: np.ndarray, xs: np.ndarray, fill: float | None = None) -> np.ndarray:
    """Bilinear resampling: output pixel (i, j) of image k reads the source at (ys, xs)[k, i, j]
    (arrays broadcastable to (n, H, W)). Outside the image the edge pixel is repeated, or
    ``fill`` is read when given (what a rotated or shifted camera frame shows at its border)."""
    n, c, h, w = images.shape
    ys = np.broadcast_to(ys, (n, h, w))
    xs = np.broadcast_to(xs, (n, h, w))
    if fill is None:
        ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = ys - y0, xs - x0
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    flat = images.reshape(n, c, h * w)
    out = np.zeros_like(flat)
    outside = np.zeros((n, 1, h * w))
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + dy, x0 + dx
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        index = (np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)).reshape(n, 1, h * w)
        values = np.take_along_axis(flat, np.broadcast_to(index, (n, c, h * w)), axis=2)
        weight = weight.reshape(n, 1, h * w)
        out += values * (weight * inside.reshape(n, 1, h * w))
        outside += weight * ~inside.reshape(n, 1, h * w)
    if fill is not None:
        out += fill * outside
    return out.reshape(n, c, h, w)


def _grid(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Pixel coordinates (rows, columns) of the image grid and its centre."""
    h, w = images.shape[2:]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return ys, xs, (h - 1) / 2.0, (w - 1) / 2.0


def _affine(images: np.ndarray, matrices: np.ndarray, shifts: np.ndarray, fill: float | None = 0.0) -> np.ndarray:
    """Each image k read through ``matrices[k]`` (2x2, output offset from the centre -> source
    offset) plus ``shifts[k]`` (source offset in pixels, rows then columns)."""
    ys, xs, cy, cx = _grid(images)
    dy, dx = ys - cy, xs - cx
    src_y = matrices[:, 0, 0, None, None] * dy + matrices[:, 0, 1, None, None] * dx + cy + shifts[:, 0, None, None]
    src_x = matrices[:, 1, 0, None, None] * dy + matrices[:, 1, 1, None, None] * dx + cx + shifts[:, 1, None, None]
    return _sample(images, src_y, src_x, fill=fill)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """The (size, size) matrix that blurs a line of pixels with a Gaussian of ``sigma`` pixels,
    reflecting at the borders (rows sum to one), so a separable blur is two matrix products."""
    if sigma <= 0:
        return np.eye(size)
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    matrix = np.zeros((size, size))
    for offset, tap in zip(offsets, taps):
        source = np.arange(size) + offset
        # symmetric reflection, repeated for kernels wider than the image
        period = 2 * size
        source = np.mod(source, period)
        source = np.where(source >= size, period - 1 - source, source)
        np.add.at(matrix, (np.arange(size), source), tap)
    return matrix


def _gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the last two axes (any leading axes)."""
    rows = _gaussian_matrix(images.shape[-2], sigma)
    cols = _gaussian_matrix(images.shape[-1], sigma)
    return rows @ images @ cols.T


def _resize_matrix(size_out: int, size_in: int) -> np.ndarray:
    """Linear interpolation from ``size_in`` samples to ``size_out`` (pixel centres aligned)."""
    position = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    position = np.clip(position, 0, size_in - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, size_in - 1)
    frac = position - lower
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), lower), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), upper), frac)
    return matrix


def _area_matrix(size_out: int, size_in: int) -> np.ndarray:
    """Box averaging from ``size_in`` pixels down to ``size_out`` cells (shares of overlap)."""
    edges = np.linspace(0, size_in, size_out + 1)
    left, right = np.arange(size_in), np.arange(size_in) + 1
    overlap = np.clip(np.minimum(edges[1:, None], right) - np.maximum(edges[:-1, None], left), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _smooth_field(rng: np.random.Generator, n: int, h: int, w: int, octaves=(2, 4, 8)) -> np.ndarray:
    """Per-image random smooth fields (n, H, W) in [0, 1]: coarse noise grids of a few sizes,
    interpolated up and summed with halving weights (a cheap stand-in for a plasma fractal)."""
    field = np.zeros((n, h, w))
    for level, cells in enumerate(octaves):
        coarse = rng.random((n, cells + 1, cells + 1))
        field += 0.5 ** level * (_resize_matrix(h, cells + 1) @ coarse @ _resize_matrix(w, cells + 1).T)
    low = field.min(axis=(1, 2), keepdims=True)
    high = field.max(axis=(1, 2), keepdims=True)
    return (field - low) / np.maximum(high - low, 1e-12)


def _random_signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def _mix_toward(images: np.ndarray, target, amount) -> np.ndarray:
    return images * (1 - amount) + target * amount


# ---------------------------------------------------------------------------------------
# Noise

def gaussian_noise(x, s, rng):
    """Sensor read noise: every pixel gets independent Gaussian noise, as in a camera at high gain or in dim light."""
    sigma = (0.06, 0.1, 0.15, 0.22, 0.32)[s]
    return x + sigma * rng.standard_normal(x.shape)


def shot_noise(x, s, rng):
    """Photon (Poisson) noise: few photons reach the sensor, so each pixel is a count whose spread grows with its brightness."""
    photons = (60.0, 25.0, 12.0, 5.0, 2.5)[s]
    return rng.poisson(x * photons) / photons


def impulse_noise(x, s, rng):
    """Salt-and-pepper noise: isolated pixels stuck fully on or off, like dead or hot sensor cells and bit errors in transmission."""
    share = (0.03, 0.06, 0.1, 0.17, 0.27)[s]
    u = rng.random(x.shape)
    out = np.where(u < share / 2, 0.0, x)
    return np.where(u > 1 - share / 2, 1.0, out)


def speckle_noise(x, s, rng):
    """Speckle: multiplicative noise whose size follows the signal, as in coherent imaging (ultrasound, radar, laser)."""
    sigma = (0.15, 0.25, 0.35, 0.5, 0.7)[s]
    return x + x * sigma * rng.standard_normal(x.shape)


# ---------------------------------------------------------------------------------------
# Blur

def gaussian_blur(x, s, rng):
    """Soft focus: a smooth Gaussian point spread, as from a cheap lens or a smudged cover."""
    return _gaussian_blur(x, _px((0.8, 1.1, 1.4, 1.8, 2.3)[s], x))


def defocus_blur(x, s, rng):
    """Out-of-focus lens: each point spreads to a disc (the aperture's shape), then a light Gaussian rounds the edges."""
    radius = _px((1.1, 1.5, 2.0, 2.6, 3.3)[s], x)
    reach = int(np.ceil(radius + 0.5))
    offsets = np.arange(-reach, reach + 1)
    dist = np.hypot(offsets[:, None], offsets[None, :])
    kernel = np.clip(radius + 0.5 - dist, 0.0, 1.0)  # anti-aliased disc
    kernel /= kernel.sum()
    h, w = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (reach, reach), (reach, reach)), mode="edge")
    out = np.zeros_like(x)
    for i, j in zip(*np.nonzero(kernel)):
        out += kernel[i, j] * padded[:, :, i:i + h, j:j + w]
    return _gaussian_blur(out, _px(0.3, x))


def motion_blur(x, s, rng):
    """Camera shake or a moving subject: the image smeared along a straight line in a random direction."""
    length = _px((1.5, 2.5, 3.5, 5.0, 6.5)[s], x)
    angle = rng.uniform(0, np.pi, size=x.shape[0])
    steps = np.linspace(-0.5, 0.5, 9) * length
    ys, xs, _, _ = _grid(x)
    out = np.zeros_like(x)
    for step in steps:
        out += _sample(x, ys + step * np.sin(angle)[:, None, None], xs + step * np.cos(angle)[:, None, None])
    return out / len(steps)


def zoom_blur(x, s, rng):
    """Zooming during the exposure: copies enlarged about the centre, averaged, so the edges streak outward."""
    largest = (1.06, 1.11, 1.16, 1.22, 1.3)[s]
    ys, xs, cy, cx = _grid(x)
    zooms = np.linspace(1.0, largest, 8)
    out = np.zeros_like(x)
    for zoom in zooms:
        out += _sample(x, cy + (ys - cy) / zoom, cx + (xs - cx) / zoom)
    return out / len(zooms)


def glass_blur(x, s, rng):
    """Frosted or textured glass in front of the lens: blur, then pixels locally scattered, then blur again."""
    sigma = _px((0.4, 0.5, 0.6, 0.7, 0.8)[s], x)
    reach = _px((0.5, 0.8, 1.1, 1.5, 2.0)[s], x)
    n, _, h, w = x.shape
    jitter = rng.uniform(-1.0, 1.0, size=(2, n, h, w))
    ys, xs, _, _ = _grid(x)
    out = _sample(_gaussian_blur(x, sigma), ys + reach * jitter[0], xs + reach * jitter[1])
    return _gaussian_blur(out, sigma)


# ---------------------------------------------------------------------------------------
# Weather

def fog(x, s, rng):
    """Fog or haze: a smooth, patchy veil of light that lifts the dark parts and flattens contrast."""
    thickness = (0.3, 0.55, 0.85, 1.25, 1.8)[s]
    n, _, h, w = x.shape
    veil = _smooth_field(rng, n, h, w)[:, None]
    return (x + thickness * veil) / (1 + thickness)


def snow(x, s, rng):
    """Falling snow: bright flakes streaked by their fall, over a scene whitened by the snowy light."""
    density = (0.03, 0.06, 0.1, 0.15, 0.22)[s]
    whiten = (0.08, 0.14, 0.2, 0.28, 0.36)[s]
    n, _, h, w = x.shape
    seeds = rng.random((n, 1, h, w))
    brightness = rng.uniform(0.6, 1.0, size=(n, 1, h, w))
    flakes = np.where(seeds < density, brightness, 0.0)
    fall = rng.uniform(-0.4, 0.4, size=n)  # wind: angle from the vertical, radians
    ys, xs, _, _ = _grid(x)
    length = _px(2.0, x)
    streaks = np.zeros_like(flakes)
    for step in np.linspace(0.0, length, 5):
        streaks = np.maximum(streaks, _sample(flakes, ys - step * np.cos(fall)[:, None, None],
                                              xs - step * np.sin(fall)[:, None, None], fill=0.0))
    grey = x.mean(axis=1, keepdims=True)
    lit = _mix_toward(x, np.maximum(x, grey * 1.5 + 0.5), whiten)
    return np.maximum(lit, streaks)


def brightness(x, s, rng):
    """Overexposure or strong daylight: every pixel lifted by the same amount, saturating the bright parts."""
    return x + (0.1, 0.2, 0.3, 0.4, 0.5)[s]


def spatter(x, s, rng):
    """Mud or rain drops on the lens: irregular blotches that hide the scene behind a dull colour."""
    cover = (0.05, 0.1, 0.16, 0.23, 0.32)[s]
    n, c, h, w = x.shape
    field = _smooth_field(rng, n, h, w, octaves=(3, 6, 12))
    colour = rng.uniform(0.25, 0.45, size=(n, c, 1, 1))
    cut = np.quantile(field.reshape(n, -1), 1 - cover, axis=1)[:, None, None]
    soft = np.clip((field - cut) / 0.05 + 0.5, 0.0, 1.0)[:, None]
    return _mix_toward(x, colour, 0.9 * soft)


# ---------------------------------------------------------------------------------------
# Digital

def contrast(x, s, rng):
    """Low contrast: a flat, washed-out exposure, every pixel pulled toward the image's mean."""
    keep = (0.55, 0.4, 0.28, 0.17, 0.08)[s]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * keep + mean


def pixelate(x, s, rng):
    """Low resolution: the image averaged down to fewer, larger pixels and shown blown back up."""
    share = (0.75, 0.6, 0.5, 0.4, 0.3)[s]
    h, w = x.shape[2:]
    ch, cw = max(1, round(h * share)), max(1, round(w * share))
    down_rows, down_cols = _area_matrix(ch, h), _area_matrix(cw, w)
    # blown up by the same overlaps: a pixel inside one cell takes its value, a pixel that
    # straddles two cells (ratios that are not whole numbers) mixes them by overlap
    up_rows = down_rows.T / down_rows.T.sum(axis=1, keepdims=True)
    up_cols = down_cols.T / down_cols.T.sum(axis=1, keepdims=True)
    return up_rows @ (down_rows @ x @ down_cols.T) @ up_cols.T


_JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.float64)
_JPEG_CHROMA = np.full((8, 8), 99.0)
_JPEG_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _dct_matrix(size: int = 8) -> np.ndarray:
    k, i = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0] /= np.sqrt(2.0)
    return matrix  # orthonormal DCT-II: inverse is the transpose


def _quality_table(table: np.ndarray, quality: int) -> np.ndarray:
    # the IJG reference scaling, integer arithmetic included (5000 // quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((table.astype(np.int64) * scale + 50) // 100, 1, 255).astype(np.float64)


def jpeg_compression(x, s, rng):
    """Lossy JPEG compression: 8x8 blocks in the cosine basis with coarse quantisation, giving blocking and ringing.

    Baseline JPEG without chroma subsampling or entropy coding (which is lossless): colour
    images go to YCbCr first, 8-bit levels, the standard tables scaled by the quality."""
    quality = (30, 18, 12, 8, 5)[s]
    n, c, h, w = x.shape
    pad_h, pad_w = -h % 8, -w % 8
    levels = np.round(np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge") * 255.0)
    if c == 3:
        to_ycc = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
        levels = np.einsum("dc,nchw->ndhw", to_ycc, levels) + np.array([0.0, 128.0, 128.0])[None, :, None, None]
        tables = np.stack([_quality_table(_JPEG_LUMA, quality)] + [_quality_table(_JPEG_CHROMA, quality)] * 2)
    else:
        tables = _quality_table(_JPEG_LUMA, quality)[None]
    hh, ww = levels.shape[2:]
    blocks = (levels - 128.0).reshape(n, c, hh // 8, 8, ww // 8, 8)
    dct = _dct_matrix()
    coeffs = np.einsum("ki,ncaibj,lj->ncakbl", dct, blocks, dct)
    q = tables[None, :, None, :, None, :]
    coeffs = np.round(coeffs / q) * q
    levels = np.einsum("ki,ncakbl,lj->ncaibj", dct, coeffs, dct).reshape(n, c, hh, ww) + 128.0
    if c == 3:
        levels = levels - np.array([0.0, 128.0, 128.0])[None, :, None, None]
        to_rgb = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
        levels = np.einsum("cd,ndhw->nchw", to_rgb, levels)
    return np.clip(np.round(levels), 0, 255)[:, :, :h, :w] / 255.0


def elastic_transform(x, s, rng):
    """Elastic warping: smooth random local stretches, like paper that is bent or handwriting that wobbles."""
    amount = _px((0.6, 0.9, 1.2, 1.6, 2.1)[s], x)
    smooth = _px(2.5, x)
    n, _, h, w = x.shape
    fields = _gaussian_blur(rng.uniform(-1.0, 1.0, size=(2, n, h, w)), smooth)
    fields /= np.maximum(fields.std(axis=(2, 3), keepdims=True), 1e-12)
    ys, xs, _, _ = _grid(x)
    return _sample(x, ys + amount * fields[0], xs + amount * fields[1])


# ---------------------------------------------------------------------------------------
# Geometric

def rotate(x, s, rng):
    """Rotation: the camera or the object turned in the image plane, clockwise or not at random."""
    degrees = (7.0, 14.0, 22.0, 31.0, 42.0)[s]
    theta = np.deg2rad(degrees) * _random_signs(rng, x.shape[0])
    cos, sin = np.cos(theta), np.sin(theta)
    matrices = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    return _affine(x, matrices, np.zeros((x.shape[0], 2)))


def shear(x, s, rng):
    """Shear: a slanted view or italic-like slant, horizontal or vertical at random."""
    amount = (0.1, 0.2, 0.3, 0.42, 0.56)[s] * _random_signs(rng, x.shape[0])
    vertical = rng.random(x.shape[0]) < 0.5
    matrices = np.tile(np.eye(2), (x.shape[0], 1, 1))
    matrices[:, 0, 1] = np.where(vertical, 0.0, amount)
    matrices[:, 1, 0] = np.where(vertical, amount, 0.0)
    return _affine(x, matrices, np.zeros((x.shape[0], 2)))


def scale(x, s, rng):
    """Scale change: the object further from the camera, shrunk about the centre with an empty border."""
    factor = (0.88, 0.78, 0.68, 0.58, 0.48)[s]
    matrices = np.tile(np.eye(2) / factor, (x.shape[0], 1, 1))
    return _affine(x, matrices, np.zeros((x.shape[0], 2)))


def translate(x, s, rng):
    """Translation: the object off centre, shifted by a share of the image in a random direction."""
    share = (0.06, 0.11, 0.16, 0.22, 0.28)[s]
    n, _, h, w = x.shape
    direction = rng.uniform(0, 2 * np.pi, size=n)
    shifts = np.stack([np.sin(direction) * share * h, np.cos(direction) * share * w], axis=1)
    return _affine(x, np.tile(np.eye(2), (n, 1, 1)), shifts)


def stripe(x, s, rng):
    """Scan-line faults: parallel bands of inverted pixels, like a bad sensor readout or a torn scan."""
    covered = (0.1, 0.18, 0.26, 0.34, 0.42)[s]
    n, _, h, w = x.shape
    ys, xs, _, _ = _grid(x)
    vertical = (rng.random(n) < 0.5)[:, None, None]
    period = max(3.0, min(h, w) / 2.0)
    phase = rng.uniform(0, period, size=n)[:, None, None]
    position = np.where(vertical, xs, ys) + phase
    band = (np.mod(position, period) < covered * period)[:, None]
    return np.where(band, 1.0 - x, x)


def zigzag(x, s, rng):
    """Scribbles: bright zigzag lines drawn across the image, one more line at each severity, like pen marks on a form."""
    n, _, h, w = x.shape
    ys, xs, _, _ = _grid(x)
    # five lines are always drawn from the rng so that a seed gives the same lines at every severity
    start = rng.uniform(0.15, 0.85, size=(5, n, 1, 1)) * (h - 1)
    period = rng.uniform(0.3, 0.6, size=(5, n, 1, 1)) * w
    height = rng.uniform(0.1, 0.25, size=(5, n, 1, 1)) * h
    transpose = rng.random((5, n, 1, 1)) < 0.5
    width = _px(0.9, x)
    ink = np.zeros((n, h, w))
    for line in range(s + 1):
        along = np.where(transpose[line], ys, xs)
        across = np.where(transpose[line], xs, ys)
        wave = start[line] + height[line] * (2 * np.abs(np.mod(along / period[line], 1.0) - 0.5) - 0.5) * 2
        ink = np.maximum(ink, np.clip(width / 2 + 0.5 - np.abs(across - wave), 0.0, 1.0))
    return np.maximum(x, ink[:, None])


# ---------------------------------------------------------------------------------------

IMAGE_FAMILIES: dict[str, ImageCorruption] = {
    kernel.__name__: ImageCorruption(kernel.__name__, group, kernel)
    for group, kernels in (
        ("noise", (gaussian_noise, shot_noise, impulse_noise, speckle_noise)),
        ("blur", (gaussian_blur, defocus_blur, motion_blur, zoom_blur, glass_blur)),
        ("weather", (fog, snow, brightness, spatter)),
        ("digital", (contrast, pixelate, jpeg_compression, elastic_transform)),
        ("geometric", (rotate, shear, scale, translate, stripe, zigzag)),
    )
    for kernel in kernels
}
