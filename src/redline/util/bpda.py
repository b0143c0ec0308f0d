"""Backward-pass differentiable approximation (BPDA, Athalye et al. 2018) for white-box attacks.

Defences such as input squeezing (rounding pixels, quantising) put a layer in front of the
model whose gradient is zero almost everywhere. A gradient attack then stalls and reports
robustness the defence does not have. BPDA keeps such a layer's forward pass and replaces
its backward pass by the identity, which is a good approximation for any layer whose
output stays close to its input.

:func:`straight_through` finds those layers in a PyTorch target by one probing forward pass
(counted as an evaluation query): a sub-module whose output has the shape of its input but
passes back no gradient at all. While the context is open, forward hooks return
``x + (f(x) - x).detach()``: the same values forward, the identity backward. Targets that
are not PyTorch modules, or have no such layer, are left alone.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


def masking_layers(target, sample: np.ndarray) -> list[str]:
    """Names of the innermost shape-preserving sub-modules that pass back no gradient."""
    import torch

    module = getattr(target, "module", None)
    if not isinstance(module, torch.nn.Module) or len(sample) == 0:
        return []
    captured: dict[str, tuple] = {}
    handles = []

    def recorder(name):
        def hook(_module, args, out):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                captured.setdefault(name, (args[0], out))
        return hook

    for name, sub in module.named_modules():
        if name:  # the whole model maps images to logits; only its parts can be front ends
            handles.append(sub.register_forward_hook(recorder(name)))
    try:
        x = torch.from_numpy(np.asarray(sample, dtype=np.float32)).requires_grad_(True)
        with target.ledger.evaluating():
            target.logits(x)
    finally:
        for h in handles:
            h.remove()

    masked = []
    for name, (inp, out) in captured.items():
        if inp.shape != out.shape or not inp.requires_grad:
            continue
        if not out.requires_grad:
            masked.append(name)
            continue
        (grad,) = torch.autograd.grad(out, inp, grad_outputs=torch.ones_like(out), retain_graph=True,
                                      allow_unused=True)
        if grad is None or not bool(grad.abs().gt(0).any()):
            # A layer that moves its input (rounding does) but lets no gradient back.
            if not torch.equal(out.detach(), inp.detach()):
                masked.append(name)
    # Patch the innermost ones: a container around a rounding layer also passes no gradient.
    return [n for n in masked if not any(other.startswith(n + ".") for other in masked)]


@contextlib.contextmanager
def straight_through(target, sample: np.ndarray, enabled: bool = True) -> Iterator[list[str]]:
    """Within the context, gradient-masking layers of ``target`` pass gradients through as
    the identity; yields the names of the layers patched (empty when none)."""
    names = masking_layers(target, sample) if enabled else []
    if not names:
        yield []
        return
    def identity_backward(_module, args, out):
        x = args[0]
        return x + (out - x).detach()

    modules = dict(target.module.named_modules())
    handles = [modules[n].register_forward_hook(identity_backward) for n in names]
    try:
        yield names
    finally:
        for h in handles:
            h.remove()
