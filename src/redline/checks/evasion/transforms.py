"""Random, differentiable image transformations: what printing and a camera do to an input.

Expectation over Transformation (Athalye et al. 2018) optimises an adversarial input for
the average loss over a distribution of such changes. Everything here is batched torch:
one ``affine_grid``/``grid_sample`` call moves every image (rotation, scaling,
translation), a grouped convolution blurs each image with its own Gaussian width, and the
photometric changes are broadcast arithmetic, so gradients flow back to the input.

    >>> ranges = TransformRanges()                         # doctest: +SKIP
    >>> params = sample_params(64, ranges, generator)      # doctest: +SKIP
    >>> seen = apply_transform(x, params, lower=0, upper=1)  # doctest: +SKIP

Images are ``(n, c, h, w)`` tensors. Torch is imported inside the functions so that
importing this module stays cheap.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class TransformRanges:
    """Bounds of the random changes, each drawn uniformly (noise: its standard deviation).

    ``rotation`` in degrees (+-), ``scale`` as (min, max) zoom factors, ``translate`` as a
    fraction of the image side (+-), ``brightness`` as an additive shift in units of the
    input range (+-), ``contrast`` as (min, max) factors around the image mean, ``blur`` as
    the largest Gaussian sigma in pixels, ``noise`` as the largest per-pixel noise sigma in
    units of the input range.
    """

    rotation: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.8, 1.2)
    blur: float = 0.8
    noise: float = 0.03

    def __post_init__(self) -> None:
        for name in ("rotation", "translate", "brightness", "blur", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"transformation range {name} must not be negative")
        for name in ("scale", "contrast"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"transformation range {name} must be (low, high) with 0 < low <= high")

    def widened(self, factor: float) -> TransformRanges:
        """The same kinds of change, each range stretched by ``factor`` (held-out evaluation)."""
        if factor < 1:
            raise ValueError("widening factor must be at least 1")

        def stretch(bounds: tuple[float, float]) -> tuple[float, float]:
            low, high = bounds
            return (max(1e-3, 1 - (1 - low) * factor), 1 + (high - 1) * factor)

        return TransformRanges(
            rotation=self.rotation * factor,
            scale=stretch(self.scale),
            translate=self.translate * factor,
            brightness=self.brightness * factor,
            contrast=stretch(self.contrast),
            blur=self.blur * factor,
            noise=self.noise * factor,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value: TransformRanges | dict[str, Any] | None) -> TransformRanges:
        """Ranges from a check parameter: an instance, a mapping of fields, or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"unknown transformation range(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
            fields = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()}
            return cls(**fields)
        raise ValueError(f"transformation ranges must be a mapping, not {type(value).__name__}")


def sample_params(n: int, ranges: TransformRanges, generator: Any) -> dict[str, Any]:
    """``n`` independent draws of every transformation parameter, as 1-d tensors."""
    import torch

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    return {
        "angle": uniform(-ranges.rotation, ranges.rotation) * (math.pi / 180.0),
        "scale": uniform(*ranges.scale),
        "shift_x": uniform(-ranges.translate, ranges.translate),
        "shift_y": uniform(-ranges.translate, ranges.translate),
        "brightness": uniform(-ranges.brightness, ranges.brightness),
        "contrast": uniform(*ranges.contrast),
        "blur": uniform(0.0, ranges.blur),
        "noise": uniform(0.0, ranges.noise),
        # The noise itself is drawn later (it needs the image shape); its seed is drawn now
        # so that the same parameters always give the same transformed image.
        "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=generator),
    }


def geometric(x: Any, params: dict[str, Any]) -> Any:
    """Rotate, scale and translate each image of ``x`` by its own parameters (bilinear).

    Pixels pulled in from outside the image repeat the border, which for images on a
    plain background (digits, objects on a table) is that background.
    """
    import torch
    import torch.nn.functional as F

    cos, sin = torch.cos(params["angle"]), torch.sin(params["angle"])
    # affine_grid maps output coordinates to input ones, so use the inverse transformation:
    # zooming in by s samples a region 1/s as large.
    inv = 1.0 / params["scale"]
    theta = torch.stack(
        [
            torch.stack([cos * inv, -sin * inv, -params["shift_x"] * 2], dim=1),
            torch.stack([sin * inv, cos * inv, -params["shift_y"] * 2], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(x: Any, sigma: Any) -> Any:
    """Blur each image with its own Gaussian width ``sigma`` (pixels; 0 leaves it unchanged)."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    radius = max(1, math.ceil(2.0 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-3).view(n, 1)
    kernel_1d = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    kernel_1d = kernel_1d / kernel_1d.sum(dim=1, keepdim=True)  # (n, k); sigma ~ 0 gives a delta
    kernel = (kernel_1d[:, :, None] * kernel_1d[:, None, :]).repeat_interleave(c, dim=0).unsqueeze(1)
    padded = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel, groups=n * c).reshape(n, c, h, w)


def photometric(x: Any, params: dict[str, Any], span: float) -> Any:
    """Contrast around each image's mean, a brightness shift, blur and sensor noise."""
    import torch

    n = x.shape[0]
    view = (n,) + (1,) * (x.dim() - 1)
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    out = (x - mean) * params["contrast"].to(x.dtype).view(view) + mean
    out = out + params["brightness"].to(x.dtype).view(view) * span
    if float(params["blur"].max()) > 0:
        out = gaussian_blur(out, params["blur"])
    if float(params["noise"].max()) > 0:
        gen = torch.Generator().manual_seed(int(params["noise_seed"][0]))
        out = out + torch.randn(out.shape, generator=gen, dtype=x.dtype) * params["noise"].to(x.dtype).view(view) * span
    return out


def apply_transform(x: Any, params: dict[str, Any], lower: float, upper: float) -> Any:
    """The whole chain (geometry, then photometry), clipped back to the valid input range."""
    span = float(upper - lower) or 1.0
    return photometric(geometric(x, params), params, span).clamp(lower, upper)


def repeat_params(params: dict[str, Any], times: int) -> dict[str, Any]:
    """Parameters tiled ``times`` over (for the same draws applied to several batches)."""
    return {k: (v if k == "noise_seed" else v.repeat(times)) for k, v in params.items()}
