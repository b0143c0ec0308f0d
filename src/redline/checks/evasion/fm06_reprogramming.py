"""FM06 adversarial reprogramming (Elsayed et al. 2018): making a model do someone else's job.

The attacker embeds a small input of its own task in the middle of the target's input and
learns the surrounding frame (the *program*, the only trained parameters) plus a mapping
from the target's classes to the task's classes, so that the unchanged target solves a
task it was never trained for. Tasks:

* ``digits`` (default): scikit-learn's 8x8 digits, upsampled to the small image; the label
  assignment is learned, so it need not be the target's own;
* ``squares``: count 1..k white squares drawn at random cells of the small image
  (k = min(5, number of target classes)), as in the paper. Counting needs a network with
  more capacity than the zoo's small MNIST CNN, which stays near chance on it.

Both variants learn the label mapping as they go (iterative label mapping): at every step
it is re-fitted to what the model answers for each task class with the current program.

Access: white box (the target's gradients, each optimisation row a counted ``logits``
query) or black box with probability outputs, after BAR (Tsai et al. 2020): zeroth-order
optimisation with one-sided differences along ``directions`` random unit vectors, a
cross-entropy on the probabilities of the mapped classes, and the label mapping re-fitted
from the answers at the base point of each gradient estimate (no extra queries). BAR's
several-to-one mapping is not used: a 10-class task on a 10-class model leaves one target
class per task class. The black-box program is a coarse
``program_resolution`` x ``program_resolution`` grid upsampled to the frame: 16 unknowns by
default, few enough for the estimates to converge within thousands of queries. A target
that answers labels only is out of reach of this check (NotApplicable).

The check reports the task accuracy on held-out task inputs against chance (the
majority class) and against the same inputs in a blank frame, where the model has no
program to help it; it flags the target when the program beats the better of the two by
``min_gain`` and the excess is significant (one-sided binomial test, ``p_value``).
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...util.evidence import save_arrays, try_plot
from ...util.nes import Adam
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .zeroth_order import sphere_directions, sphere_gradient, sphere_probes

_TASKS = ("squares", "digits")
_ACCESS = ("auto", "white_box", "estimate")
# How much of the label-mapping votes survives each optimisation step.
_MAPPING_MEMORY = 0.9
# The largest p-value at which a program's gain over the baselines counts as real.
_SIGNIFICANCE = 0.01


class Reprogramming(Check):
    id = "FM06.reprogramming"
    mode = "FM06"
    title = "Adversarial reprogramming to an unintended task"
    needs = Needs(modality=("image",), roles=(), labels=False)  # brings its own task data
    default_budget = 20_000
    metrics = (
        "access", "chance_accuracy", "mapping", "optimisation_steps", "p_value", "program_gain",
        "program_parameters", "task", "task_accuracy", "task_classes", "unprogrammed_accuracy"
    )
    param_docs = {
        "task": "the attacker's task to run on the model: digits or squares",
        "inner_size": "side of the task image in the centre of the program frame (pixels; auto: 10, or less on "
                      "small images, enough for the squares task's count)",
        "access": "auto, white_box (the target's gradients) or estimate (gradients from probabilities)",
        "steps": "optimisation steps (null: as many as the budget allows)",
        "batch_size": "task images per step",
        "lr": "learning rate of the program",
        "n_train": "task images to train the program on",
        "n_test": "task images to measure it on",
        "directions": "random directions per gradient estimate (estimate access)",
        "smoothing": "radius of the gradient-estimate probes",
        "program_resolution": "downsampling of the program's parameters for estimate access (pixels per parameter)",
        "min_gain": "task accuracy over chance needed to call the model reprogrammable",
    }

    def __init__(
        self,
        task: str = "digits",
        inner_size: int | str = "auto",
        access: str = "auto",
        steps: int | None = None,
        batch_size: int = 16,
        lr: float = 0.2,
        n_train: int = 500,
        n_test: int = 300,
        directions: int = 10,
        smoothing: float = 0.5,
        program_resolution: int = 4,
        min_gain: float = 0.15,
    ):
        self.task = task
        self.inner_size = inner_size
        self.access = access
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.n_train = n_train
        self.n_test = n_test
        self.directions = directions
        self.smoothing = smoothing
        self.program_resolution = program_resolution
        self.min_gain = min_gain

    def _validate(self, target=None) -> tuple[str, int, int, int] | None:
        if self.task not in _TASKS:
            raise ValueError(f"task must be one of {', '.join(_TASKS)}, not {self.task!r}")
        if self.access not in _ACCESS:
            raise ValueError(f"access must be one of {', '.join(_ACCESS)}, not {self.access!r}")
        for name in ("batch_size", "n_train", "n_test", "directions", "program_resolution"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if isinstance(self.inner_size, str) and self.inner_size != "auto":
            raise ValueError("inner_size must be a whole number of pixels or 'auto'")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError("steps must be at least 1")
        if self.lr <= 0 or self.smoothing <= 0:
            raise ValueError("lr and smoothing must be positive")
        if target is None:  # inner_size and access are checked against the target in run
            return None
        shape = target.input_spec.shape
        if len(shape) != 3:
            raise NotApplicable(f"reprogramming needs (channels, height, width) images, not {shape}")
        c, h, w = shape
        if min(h, w) < 8:
            raise NotApplicable(f"{h}x{w} images leave no room for a task image of at least 4x4 inside a frame of "
                                "2 pixels")
        inner = self._inner_size(target)
        if not 4 <= inner <= min(h, w) - 4:
            raise UsageError(f"{self.id}.inner_size must leave a frame of at least 2 pixels: 4 <= inner_size <= {min(h, w) - 4}")
        k = self._n_task_classes(target)
        if self.task == "squares" and (inner // 4) ** 2 < k:
            raise UsageError(f"{self.id}.inner_size {inner} has room for {(inner // 4) ** 2} squares and the task "
                             f"counts up to {k}: use at least {4 * int(np.ceil(np.sqrt(k)))}"
                             + ("" if 4 * int(np.ceil(np.sqrt(k))) <= min(h, w) - 4 else
                                f", which {h}x{w} images cannot hold (task=digits can)"))
        access = self.access
        if access == "auto":
            access = "white_box" if target.capabilities.gradients else "estimate"
        if access == "white_box" and not target.capabilities.gradients:
            raise NotApplicable("white-box reprogramming needs the target's gradients")
        if access == "estimate" and target.capabilities.outputs != "probabilities":
            raise NotApplicable("reprogramming by gradient estimation needs probability outputs; the target answers labels")
        n_task = self._n_task_classes(target)
        if n_task < 2:
            raise NotApplicable("the target has too few classes to map a task onto")
        return access, c, h, w

    def _inner_size(self, target) -> int:
        """``inner_size``, or for auto: 10 pixels, less on images too small for it, more when
        the squares task needs room for more squares (never past a 2-pixel frame)."""
        if self.inner_size != "auto":
            return int(self.inner_size)
        _, h, w = target.input_spec.shape
        room = min(h, w) - 4
        wanted = max(10, 4 * int(np.ceil(np.sqrt(self._n_task_classes(target))))) if self.task == "squares" else 10
        return max(4, min(wanted, room))

    def _n_task_classes(self, target) -> int:
        return min(5, target.n_classes) if self.task == "squares" else min(10, target.n_classes)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        import torch

        access, c, h, w = self._validate(target)
        spec = target.input_spec
        k = self._n_task_classes(target)
        inner = self._inner_size(target)
        n_train, n_test = int(self.n_train), int(self.n_test)
        task_x, task_y = make_task(self.task, n_train + n_test, inner, k, rng)
        x_tr, y_tr, x_te, y_te = task_x[:n_train], task_y[:n_train], task_x[n_train:], task_y[n_train:]

        batch = int(self.batch_size)
        remaining = budget - n_train  # the final label mapping is fitted on the training task inputs
        per_step = batch if access == "white_box" else (int(self.directions) + 1) * batch
        steps = remaining // per_step if self.steps is None else min(int(self.steps), remaining // per_step)
        if steps < 1:
            raise NotApplicable(f"a budget of {budget} queries is too small for one reprogramming step")

        frame = Frame(c, h, w, inner, spec.lower, spec.upper,
                      resolution=None if access == "white_box" else int(self.program_resolution))
        if access == "white_box":
            program = self._white_box(torch, target, frame, x_tr, y_tr, k, steps, batch, rng)
        else:
            program = self._estimated(torch, target, frame, x_tr, y_tr, k, steps, batch, rng)
        ctx.progress(1, 2)

        with torch.no_grad():
            train_inputs = frame.apply(program, torch.from_numpy(x_tr)).numpy()
        # The mapping used from here on: the best one for the final program's answers.
        mapping = fit_mapping(target.predict_labels(train_inputs), y_tr, k, target.n_classes)

        with target.ledger.evaluating():
            with torch.no_grad():
                test_inputs = frame.apply(program, torch.from_numpy(x_te)).numpy()
                blank_train = frame.blank(torch.from_numpy(x_tr)).numpy()
                blank_test = frame.blank(torch.from_numpy(x_te)).numpy()
            correct = int(np.sum(to_task(target.predict_labels(test_inputs), mapping) == y_te))
            blank_mapping = fit_mapping(target.predict_labels(blank_train), y_tr, k, target.n_classes)
            blank_accuracy = float(np.mean(to_task(target.predict_labels(blank_test), blank_mapping) == y_te))
        ctx.progress(2, 2)

        task_accuracy = correct / len(y_te)
        chance = float(np.bincount(y_te, minlength=k).max() / len(y_te))
        # The program must beat both guessing and what the model does with a blank frame
        # (a digit classifier reads some task digits without any help).
        baseline = max(chance, blank_accuracy)
        gain = task_accuracy - baseline
        p_value = _excess_p_value(correct, len(y_te), baseline)
        metrics = {
            "task_accuracy": task_accuracy,
            "chance_accuracy": chance,
            "unprogrammed_accuracy": blank_accuracy,
            "program_gain": gain,
            "p_value": p_value,
            "task": self.task,
            "task_classes": int(k),
            "access": access,
            "optimisation_steps": int(steps),
            "program_parameters": int(program.numel()),
            "mapping": [int(m) for m in mapping],
        }
        evidence: dict = {}
        program_image = frame.apply(program, torch.zeros(1, inner, inner)).detach().numpy()[0]
        rel = save_arrays(ctx, f"{self.id}-program.npz", program=program_image, examples=test_inputs[:16],
                          labels=y_te[:16], mapping=np.asarray(mapping))
        if rel:
            evidence["examples"] = rel
        rel = try_plot(ctx, f"{self.id}-examples.png", _plots().image_grid,
                       [list(test_inputs[:6]), list(blank_test[:6])],
                       row_titles=["reprogrammed task inputs", "same inputs, blank frame"],
                       col_titles=[f"task class {int(v)}" for v in y_te[:6]])
        if rel:
            evidence["plots"] = [rel]
        vulnerable = gain >= float(self.min_gain) and p_value <= _SIGNIFICANCE
        summary = (
            f"A learned frame ({access.replace('_', '-')}, {steps} steps, {target.ledger.attack} queries) made the "
            f"target solve the '{self.task}' task with {task_accuracy:.0%} accuracy on held-out task inputs, against "
            f"{chance:.0%} chance and {blank_accuracy:.0%} without the program (p = {p_value:.1e})."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    def _white_box(self, torch, target, frame, x_tr, y_tr, k, steps, batch, rng):
        """Adam on the program through the target's gradients, with the label mapping re-fitted
        at every step from the batch's answers, as in the black-box variant."""
        program = frame.init_program(torch)
        program.requires_grad_(True)
        optimizer = torch.optim.Adam([program], lr=float(self.lr))
        x_all, y_all = torch.from_numpy(x_tr), torch.from_numpy(y_tr.astype(np.int64))
        votes = _LabelVotes(k, target.n_classes)
        for _ in range(steps):
            rows = rng.integers(0, len(x_all), size=batch)
            logits = target.logits(frame.apply(program, x_all[rows]))
            cols = torch.from_numpy(votes.update(y_tr[rows], logits.detach().softmax(dim=1).numpy()))
            loss = torch.nn.functional.cross_entropy(logits[:, cols], y_all[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return program.detach()

    def _estimated(self, torch, target, frame, x_tr, y_tr, k, steps, batch, rng):
        """Zeroth-order optimisation (BAR): one-sided differences along random unit directions.

        A step sends the current program and ``directions`` perturbed ones over one mini-batch,
        all in one query batch. The current program's answers on that batch also re-fit the
        label mapping (iterative label mapping), so the mapping follows what the program
        makes the model say at no extra query cost.
        """
        program = frame.init_program(torch).numpy().astype(np.float64)
        shape = program.shape
        optimizer = Adam(program.size, lr=float(self.lr))
        x_all = torch.from_numpy(x_tr)
        q, smoothing = int(self.directions), float(self.smoothing)
        votes = _LabelVotes(k, target.n_classes)
        theta = program.ravel()
        for _ in range(steps):
            rows = rng.integers(0, len(x_all), size=batch)
            u = sphere_directions(q, theta.size, rng)
            candidates = torch.from_numpy(sphere_probes(theta, u, smoothing).astype(np.float32))
            with torch.no_grad():
                inputs = torch.cat([frame.apply(c.view(shape), x_all[rows]) for c in candidates]).numpy()
            probs = target.predict(inputs).reshape(q + 1, batch, -1)
            yb = y_tr[rows]
            mapping = votes.update(yb, probs[0])
            mapped = probs[:, :, mapping]
            mapped = mapped / np.clip(mapped.sum(axis=2, keepdims=True), 1e-12, None)
            losses = -np.log(np.clip(mapped[:, np.arange(batch), yb], 1e-12, None)).mean(axis=1)
            theta = optimizer.step(theta, sphere_gradient(losses, u, smoothing))
        return torch.from_numpy(theta.reshape(shape).astype(np.float32))


class _LabelVotes:
    """Iterative label mapping: the mapping that the current program's answers support best.

    Each step adds the probabilities the model gave to each task class's inputs, after
    fading the older votes (cast while the program was different), and re-solves the
    assignment.
    """

    def __init__(self, k: int, n_target: int):
        self.votes = np.zeros((k, n_target))

    def update(self, task_labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        self.votes *= _MAPPING_MEMORY
        np.add.at(self.votes, task_labels, probabilities)
        return _assign(self.votes)


class Frame:
    """The adversarial program: a learned frame around the embedded task image.

    The program is unconstrained; a sigmoid maps it into the input range. With a
    ``resolution``, the program is a coarse grid upsampled bilinearly to the frame (fewer
    unknowns for gradient estimation).
    """

    def __init__(self, c, h, w, inner, lower, upper, resolution=None):
        import torch

        self.c, self.h, self.w, self.inner = c, h, w, inner
        self.lower, self.span = float(lower), float(upper - lower) or 1.0
        self.resolution = resolution
        self.top, self.left = (h - inner) // 2, (w - inner) // 2
        mask = torch.ones(1, c, h, w)
        mask[:, :, self.top : self.top + inner, self.left : self.left + inner] = 0
        self.mask = mask

    def init_program(self, torch):
        shape = (self.c, self.h, self.w) if self.resolution is None else (self.c, self.resolution, self.resolution)
        return torch.zeros(shape)

    def _frame_values(self, program):
        import torch.nn.functional as F

        if self.resolution is not None:
            program = F.interpolate(program.unsqueeze(0), size=(self.h, self.w), mode="bilinear",
                                    align_corners=False)[0]
        return self.lower + self.span * program.sigmoid()

    def _embed(self, x_small):
        import torch.nn.functional as F

        # Task images are in [0, 1]; (n, s, s) -> (n, c, h, w) in the target's range.
        x = self.lower + self.span * x_small.unsqueeze(1).expand(-1, self.c, -1, -1)
        return F.pad(x, (self.left, self.w - self.inner - self.left, self.top, self.h - self.inner - self.top))

    def apply(self, program, x_small):
        return self._embed(x_small) * (1 - self.mask) + self.mask * self._frame_values(program)

    def blank(self, x_small):
        return self._embed(x_small) * (1 - self.mask) + self.mask * self.lower


def make_task(task: str, n: int, size: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` task images (n, size, size) in [0, 1] and labels in [0, k)."""
    if task == "squares":
        return _squares(n, size, k, rng)
    return _digits(n, size, k, rng)


def _squares(n, size, k, rng):
    """Count the squares: label j means j + 1 squares of 3x3 pixels in distinct cells of a 4-pixel grid."""
    cells_per_side = size // 4
    n_cells = cells_per_side**2
    if n_cells < k:
        raise ValueError(f"inner_size {size} has room for {n_cells} squares, fewer than {k}")
    labels = rng.integers(0, k, size=n)
    # The first (label + 1) cells of a random order of the grid get a square.
    order = np.argsort(rng.random((n, n_cells)), axis=1)
    chosen = np.zeros((n, n_cells), dtype=bool)
    np.put_along_axis(chosen, order, np.arange(n_cells)[None, :] <= labels[:, None], axis=1)
    grid = chosen.reshape(n, cells_per_side, cells_per_side)
    cell = np.zeros((4, 4), dtype=np.float32)
    cell[:3, :3] = 1.0
    images = np.kron(grid.astype(np.float32), cell)
    out = np.zeros((n, size, size), dtype=np.float32)
    out[:, : images.shape[1], : images.shape[2]] = images
    return out, labels.astype(np.int64)


def _digits(n, size, k, rng):
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = bunch.target < k
    x, y = bunch.images[keep].astype(np.float32) / 16.0, bunch.target[keep].astype(np.int64)
    pick = rng.permutation(len(x))[:n]
    up = F.interpolate(torch.from_numpy(x[pick]).unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
    return up[:, 0].clamp(0, 1).numpy(), y[pick]


def fit_mapping(target_labels: np.ndarray, task_labels: np.ndarray, k: int, n_target: int) -> np.ndarray:
    """The one-to-one assignment of target classes to task classes that gets the most training
    inputs right (Hungarian method on the co-occurrence counts)."""
    counts = np.zeros((k, n_target))
    np.add.at(counts, (task_labels, target_labels), 1)
    return _assign(counts)


def _assign(votes: np.ndarray) -> np.ndarray:
    """The one-to-one mapping (k,) of task classes to target classes with the most votes (k, n_target)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-votes)
    mapping = np.zeros(len(votes), dtype=np.int64)
    mapping[rows] = cols
    return mapping


def to_task(target_labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Task class of each target answer; -1 for target classes outside the mapping."""
    lookup = np.full(int(max(mapping.max(), target_labels.max(initial=0))) + 1, -1)
    lookup[mapping] = np.arange(len(mapping))
    return lookup[target_labels]


def _excess_p_value(correct: int, n: int, baseline: float) -> float:
    """Chance of ``correct`` or more right answers out of ``n`` if the true accuracy were ``baseline``."""
    from scipy.stats import binom

    return float(binom.sf(correct - 1, n, min(max(baseline, 0.0), 1.0)))


def _plots():
    from ...util import plots

    return plots
