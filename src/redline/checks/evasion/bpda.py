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

TorchScript modules (``torch.jit.load``, traced or scripted) take no forward hooks, so
their layers can be neither probed nor patched. For them the probe checks the whole
model instead: the gradient of the top-two logit margin with respect to the input, on
the same probe rows. When it is finite and non-zero on every row nothing masks gradients
and the attack runs as is; otherwise the attack still runs, and the finding says that
gradients vanish and that BPDA could not be applied (so its result may understate the
weakness). Scripted sub-modules inside an ordinary module are skipped the same way.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


class PatchedLayers(list):
    """The names of the layers patched (a list), and ``note``: what the probe could not do,
    or None."""

    def __init__(self, names=(), note: str | None = None):
        super().__init__(names)
        self.note = note


def _scripted(module) -> bool:
    import torch

    return isinstance(module, torch.jit.ScriptModule)


def vanishing_gradient_rows(target, sample: np.ndarray) -> int:
    """Probe rows whose top-two logit margin has a zero or non-finite input gradient (one
    counted evaluation query per row)."""
    import torch

    x = torch.from_numpy(np.asarray(sample, dtype=np.float32)).requires_grad_(True)
    with target.ledger.evaluating():
        logits = target.logits(x)
    top2 = logits.topk(2, dim=1).values
    (grad,) = torch.autograd.grad((top2[:, 0] - top2[:, 1]).sum(), x, allow_unused=True)
    if grad is None:
        return len(sample)
    flat = grad.detach().flatten(1)
    healthy = torch.isfinite(flat).all(dim=1) & flat.abs().gt(0).any(dim=1)
    return int((~healthy).sum())


def masking_layers(target, sample: np.ndarray) -> list[str]:
    """Names of the innermost shape-preserving sub-modules that pass back no gradient.

    For a TorchScript target (no hooks): an empty :class:`PatchedLayers` whose ``note``
    says whether the whole model's input gradients vanish on the probe rows.
    """
    import torch

    module = target.torch_module()
    if not isinstance(module, torch.nn.Module) or len(sample) == 0:
        return []
    if _scripted(module):
        bad = vanishing_gradient_rows(target, sample)
        note = ("TorchScript model: layer probe skipped (no forward hooks); input gradients are finite and "
                "non-zero on every probe row") if bad == 0 else (
                f"TorchScript model: input gradients vanish on {bad} of {len(sample)} probe rows and BPDA cannot "
                "patch a TorchScript model's layers, so this white-box result may understate the weakness")
        return PatchedLayers((), note)
    captured: dict[str, tuple] = {}
    handles = []

    def recorder(name):
        def hook(_module, args, out):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
                captured.setdefault(name, (args[0], out))
        return hook

    scripted = _scripted_prefixes(module)
    for name, sub in module.named_modules():
        # The whole model maps images to logits; only its parts can be front ends. Scripted
        # parts take no hooks (and nothing inside them can be patched).
        if name and not _scripted(sub) and not any(name.startswith(p + ".") for p in scripted):
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
    return PatchedLayers(n for n in masked if not any(other.startswith(n + ".") for other in masked))


def _scripted_prefixes(module) -> list[str]:
    return [name for name, sub in module.named_modules() if name and _scripted(sub)]


@contextlib.contextmanager
def straight_through(target, sample: np.ndarray, enabled: bool = True) -> Iterator[list[str]]:
    """Within the context, gradient-masking layers of ``target`` pass gradients through as
    the identity; yields the names of the layers patched (empty when none)."""
    names = masking_layers(target, sample) if enabled else []
    if not names:
        yield names if isinstance(names, PatchedLayers) else PatchedLayers()
        return
    def identity_backward(_module, args, out):
        x = args[0]
        return x + (out - x).detach()

    modules = dict(target.torch_module().named_modules())
    handles = [modules[n].register_forward_hook(identity_backward) for n in names]
    try:
        yield PatchedLayers(names)
    finally:
        for h in handles:
            h.remove()
