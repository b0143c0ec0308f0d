"""Reference (shadow) models for membership inference: which rows each one trains on,
and training them.

A *plan* is a boolean matrix ``in_mask`` (models x rows): row ``n`` of the candidate data
is in model ``k``'s training set when ``in_mask[k, n]``. Every model trains on the same
number of rows, normally the target's training-set size, because how much a model
memorises depends on how much data it sees.

Models come from one of two sources:

* ``recipe``: the target's own training recipe (``target.retrain(x, y, seed)``), one model
  at a time; the faithful choice when the target is trainable.
* ``surrogate``: an architecture picked for the data (an MLP for tables and small images,
  a small CNN for larger images) or named by the caller, all models trained at once: their
  weights are stacked and one batched forward/backward pass serves all of them per step.

Either way the models are trained locally on data with its true labels; they cost the
target no queries.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import TargetError

SOURCES = ("auto", "recipe", "surrogate")


# -- plans ------------------------------------------------------------------------------


def online_plan(n_rows: int, n_models: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Training sets drawn from the evaluated rows themselves, in complementary pairs.

    Models 2j and 2j+1 take disjoint random sets of ``size`` rows (``size`` at most half the
    rows), so every row is in at most one model of each pair and, when ``size`` is exactly
    half, in exactly half of all models. An odd last model takes a random set of its own.
    """
    size = _check_plan(n_rows, n_models, size, n_rows // 2)
    mask = np.zeros((n_models, n_rows), dtype=bool)
    for k in range(0, n_models, 2):
        order = rng.permutation(n_rows)
        mask[k, order[:size]] = True
        if k + 1 < n_models:
            mask[k + 1, order[size : 2 * size]] = True
    return mask


def offline_plan(n_rows: int, n_models: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Independent random training sets of ``size`` rows each from population data."""
    size = _check_plan(n_rows, n_models, size, n_rows)
    mask = np.zeros((n_models, n_rows), dtype=bool)
    for k in range(n_models):
        mask[k, rng.choice(n_rows, size=size, replace=False)] = True
    return mask


def _check_plan(n_rows: int, n_models: int, size: int, most: int) -> int:
    if n_models < 1:
        raise ValueError("at least one reference model is needed")
    size = min(int(size), most)
    if size < 2:
        raise ValueError(f"{n_rows} rows are too few to draw reference training sets from")
    return size


# -- trained models ---------------------------------------------------------------------


@dataclasses.dataclass
class ReferenceModels:
    """Trained reference models that answer probabilities for all of them at once."""

    source: str  # "recipe" or "surrogate:<architecture>"
    n_models: int
    _predict: Any  # callable: np.ndarray (n, ...) -> (K, n, C)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of every model on ``x``: an array (models, rows, classes)."""
        with _threads_for(len(x) * int(np.prod(x.shape[1:]))):
            return self._predict(np.asarray(x))


def train_reference_models(
    target: Any,
    x: np.ndarray,
    y: np.ndarray,
    in_mask: np.ndarray,
    *,
    modality: str,
    seed: int = 0,
    source: str = "auto",
    architecture: str | None = None,
    hidden: Sequence[int] | None = None,
    length: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
) -> ReferenceModels:
    """One model per row of ``in_mask``, trained on ``x[in_mask[k]], y[in_mask[k]]``.

    ``source="auto"`` uses the target's recipe when it is trainable, else a surrogate.
    ``architecture`` ('mlp' or 'cnn') overrides the surrogate's choice for the data (a
    recipe is the target's own, so it is ignored there); ``hidden`` (the MLP's layer widths
    or the CNN's channels), ``length`` (full-batch steps of an MLP, epochs of a CNN, or
    epochs whenever ``batch_size`` is given), ``batch_size`` (one-cycle mini-batches of that
    many rows) and ``lr`` override that architecture's defaults, so a caller can imitate a
    particular target.
    """
    if source not in SOURCES:
        raise ValueError(f"reference source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "auto":
        source = "recipe" if target.capabilities.trainable and target.trainer is not None else "surrogate"
    x, y = np.asarray(x), np.asarray(y).astype(np.int64)
    if source == "recipe":
        if target.trainer is None:
            raise TargetError(f"{target.spec} has no training recipe, so reference models cannot use it")
        return _recipe_models(target, x, y, in_mask, seed)
    if architecture is None:
        architecture = surrogate_architecture(x.shape[1:], modality)
    elif architecture not in _SCHEDULES:
        raise ValueError(f"surrogate architecture must be one of {', '.join(_SCHEDULES)}, not {architecture!r}")
    elif architecture == "cnn" and not cnn_fits(x.shape[1:]):
        raise ValueError(f"a surrogate CNN needs (channels, height, width) images of at least 4x4, not {x.shape[1:]}")
    if length is not None and int(length) < 1:
        raise ValueError(f"a surrogate's training length must be at least 1, not {length}")
    schedule = _SCHEDULES[architecture]
    overrides = {"steps_or_epochs": length, "batch_size": batch_size, "lr": lr}
    schedule = dataclasses.replace(schedule, **{k: v for k, v in overrides.items() if v is not None})
    return _surrogate_models(architecture, x, y, in_mask, target.n_classes, seed, standardise=modality != "image",
                             hidden=hidden, schedule=schedule)


def surrogate_architecture(input_shape: Sequence[int], modality: str) -> str:
    """'cnn' for images of at least 16x16 pixels, 'mlp' for everything else."""
    shape = tuple(int(s) for s in input_shape)
    if modality == "image" and len(shape) == 3 and shape[1] >= 16 and shape[2] >= 16:
        return "cnn"
    return "mlp"


def cnn_fits(input_shape: Sequence[int]) -> bool:
    """Whether the surrogate CNN (two 2x2 poolings) can take inputs of this shape."""
    shape = tuple(int(s) for s in input_shape)
    return len(shape) == 3 and shape[1] >= 4 and shape[2] >= 4


def _recipe_models(target: Any, x: np.ndarray, y: np.ndarray, in_mask: np.ndarray, seed: int) -> ReferenceModels:
    models = []
    with _threads_for(int(in_mask[0].sum()) * int(np.prod(x.shape[1:]))):
        for k, rows in enumerate(in_mask):
            models.append(target.retrain(x[rows], y[rows], seed + k))

    def predict(rows: np.ndarray) -> np.ndarray:
        out = []
        for model in models:
            if model.capabilities.outputs != "probabilities":
                raise TargetError(f"the retrained {target.spec} answers labels only; reference models need probabilities")
            out.append(np.asarray(model.predict(rows), dtype=np.float64))
        return np.stack(out)

    return ReferenceModels("recipe", len(models), predict)


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """How a surrogate family trains: full-batch Adam for MLPs, one-cycle mini-batches for CNNs."""

    steps_or_epochs: int
    lr: float
    batch_size: int | None  # None: full batch


_SCHEDULES = {"mlp": _Schedule(300, 1e-3, None), "cnn": _Schedule(12, 5e-3, 128)}
# Layer widths (MLP) or channels (CNN) when the caller names none.
_DEFAULT_HIDDEN = {"mlp": (128, 128), "cnn": (16, 32)}


def _surrogate_models(
    architecture: str, x: np.ndarray, y: np.ndarray, in_mask: np.ndarray, n_classes: int, seed: int,
    standardise: bool, hidden: Sequence[int] | None = None, schedule: _Schedule | None = None,
) -> ReferenceModels:
    import torch
    from torch.func import functional_call, stack_module_state, vmap
    from torch.nn import functional as F

    from ..nn.nets import small_cnn
    from ..nn.training import FullBatch, fit

    sizes = in_mask.sum(axis=1)
    if len(set(sizes.tolist())) != 1:
        raise ValueError("batched reference models need training sets of equal size")
    shape = x.shape[1:]
    # Tables get standardised features (a net trains poorly on raw codes); pixels stay as
    # they are, as image models are usually trained.
    flat = x.reshape(len(x), -1)
    centre = flat.mean(axis=0) if standardise else np.zeros(flat.shape[1])
    scale = flat.std(axis=0) + 1e-6 if standardise else np.ones(flat.shape[1])

    def prepare(rows: np.ndarray) -> Any:
        arr = np.asarray(rows, dtype=np.float32)
        if architecture == "mlp":
            arr = ((arr.reshape(len(arr), -1) - centre) / scale).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr))

    default = _SCHEDULES[architecture]
    schedule = schedule or default
    widths = tuple(int(h) for h in (hidden or _DEFAULT_HIDDEN[architecture]))
    x_all, y_all = prepare(x), torch.from_numpy(y)
    index = torch.from_numpy(np.stack([np.flatnonzero(m) for m in in_mask]))  # (K, m)
    k_models, m = index.shape

    with _threads_for(int(m) * int(np.prod(shape)) * k_models), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if architecture == "mlp":
            net = _StackedMlp(x_all.shape[1], widths, n_classes, k_models)
            params, batched, shared = net.params, net.forward, net.forward_shared
        else:
            nets = [small_cnn(shape, n_classes, channels=widths) for _ in range(k_models)]
            stacked, buffers = stack_module_state(nets)
            params = list(stacked.values())
            base = copy.deepcopy(nets[0]).to("meta")

            def forward(p: tuple, xb: Any) -> Any:
                return functional_call(base, ({n: t for n, t in zip(stacked, p)}, buffers), (xb,))

            def batched(xb: Any) -> Any:  # every model its own batch: (K, B, ...) -> (K, B, C)
                return vmap(forward)(tuple(params), xb)

            def shared(xb: Any) -> Any:  # every model the same batch: (B, ...) -> (K, B, C)
                return vmap(forward, in_dims=(0, None))(tuple(params), xb)

        def batch_loss(batch_idx: Any, _epoch: int) -> Any:  # batch_idx: (K, B) row numbers
            logits = batched(x_all[batch_idx])
            loss = F.cross_entropy(logits.reshape(-1, n_classes), y_all[batch_idx].reshape(-1), reduction="sum")
            return loss / batch_idx.shape[1]  # each model's own mean loss

        minibatches = schedule.batch_size is not None
        batches = _PerModelShuffle(index, schedule.batch_size, generator) if minibatches else FullBatch(index)
        fit(params, batch_loss, batches, epochs=schedule.steps_or_epochs, lr=schedule.lr, one_cycle=minibatches)
        for p in params:
            p.requires_grad_(False)

    def predict(rows: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(rows), 2048):
                logits = shared(prepare(rows[start : start + 2048]))
                out.append(torch.softmax(logits.double(), dim=-1).numpy())
        return np.concatenate(out, axis=1) if out else np.zeros((k_models, 0, n_classes))

    name = architecture
    if hidden is not None or schedule != default:  # say what was trained when it is not the default
        name += "-" + "x".join(map(str, widths)) + f"@{schedule.steps_or_epochs}"
    return ReferenceModels(f"surrogate:{name}", k_models, predict)


class _PerModelShuffle:
    """Mini-batches for K stacked models at once: each model shuffles its own training rows
    (row k of ``index``, shape (K, m)) every epoch and gets a (K, B) block of row numbers per step."""

    def __init__(self, index: Any, batch_size: int, generator: Any):
        self.index, self.batch_size, self.generator = index, batch_size, generator
        self.steps_per_epoch = -(-index.shape[1] // batch_size)

    def epoch(self) -> Iterator[Any]:
        import torch

        k_models, m = self.index.shape
        order = torch.argsort(torch.rand(k_models, m, generator=self.generator), dim=1)
        shuffled = torch.gather(self.index, 1, order)
        for start in range(0, m, self.batch_size):
            yield shuffled[:, start : start + self.batch_size]


class _StackedMlp:
    """K ReLU MLPs as stacked weight tensors: one ``baddbmm`` per layer serves all models,
    with none of the per-call overhead of vmap (which dominates for small dense nets)."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, k_models: int):
        import torch

        self.params = []
        width = n_in
        for size in (*hidden, n_out):
            bound = 1.0 / np.sqrt(width)  # nn.Linear's default initialisation
            weight = (torch.rand(k_models, width, size) * 2 - 1) * bound
            bias = (torch.rand(k_models, 1, size) * 2 - 1) * bound
            self.params += [weight.requires_grad_(True), bias.requires_grad_(True)]
            width = size

    def forward(self, xb: Any) -> Any:
        """(K, B, features) -> (K, B, classes)."""
        import torch

        h = xb
        last = len(self.params) // 2 - 1
        for i in range(0, len(self.params), 2):
            h = torch.baddbmm(self.params[i + 1], h, self.params[i])
            if i // 2 < last:
                h = h.relu()
        return h

    def forward_shared(self, xb: Any) -> Any:
        """(B, features), the same rows for every model -> (K, B, classes)."""
        return self.forward(xb.unsqueeze(0).expand(self.params[0].shape[0], -1, -1).contiguous())


@contextlib.contextmanager
def _threads_for(work: int) -> Iterator[None]:
    """Run small jobs on one torch thread.

    For small full-batch steps, waking and synchronising worker threads costs more than the
    arithmetic, and on a busy machine it costs far more (threads spin while waiting for a
    core). Large jobs keep torch's setting.
    """
    try:
        import torch
    except ImportError:  # recipe-only targets (scikit-learn) need no torch
        yield
        return
    if work >= 5_000_000:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
