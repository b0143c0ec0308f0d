"""Steepest-ascent steps and projections onto L-inf / L2 balls for batched torch tensors.

Shared by the white-box gradient attacks (PGD, fast minimum-norm). Only tensor methods are
used, so importing this module does not import torch. ``radius`` is a number or a tensor
with one radius per input.
"""
from __future__ import annotations


def _per_input(values, like):
    """(n,) values shaped to broadcast against a batch like ``like``."""
    return values.view(-1, *[1] * (like.dim() - 1))


def l2_norms(batch):
    """(n,) L2 norm of each input of a batch."""
    return batch.flatten(1).norm(dim=1)


def steepest_direction(grad, norm: str):
    """The unit-size step direction that increases a linear loss fastest in the given norm."""
    if norm == "linf":
        return grad.sign()
    return grad / _per_input(l2_norms(grad).clamp_min(1e-12), grad)


def project_onto_ball(delta, radius, norm: str):
    """``delta`` clipped (L-inf) or scaled back (L2) into the ball of ``radius`` around 0."""
    if norm == "linf":
        r = _per_input(radius.clamp_min(0), delta) if hasattr(radius, "view") else radius
        return delta.clamp(-r, r)
    scale = (radius / l2_norms(delta).clamp_min(1e-12)).clamp(min=0.0, max=1.0)
    return delta * _per_input(scale, delta)
