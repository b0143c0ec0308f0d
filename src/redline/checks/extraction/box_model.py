"""A decision tree rebuilt as axis-aligned boxes, each with the output the target gave inside it.

Path-finding extraction recovers a tree leaf by leaf: a leaf is a box (an interval on every
ordered feature, a set of codes on every categorical one) and an output row. This module
holds those boxes, answers for new inputs, and turns them into a torch module so the copy
can be saved as ONNX. An input that lies in several boxes gets the promoted one, else the
smallest (the most specific leaf found); an input in none gets the box it misses on the
fewest features.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .input_domain import CATEGORICAL, INTEGER, InputDomain


@dataclasses.dataclass
class Box:
    """One recovered leaf. ``lower``/``upper`` bound the ordered features (inclusive; +-inf
    for categorical ones); ``masks[i]`` marks the allowed codes of categorical feature ``i``."""

    lower: np.ndarray
    upper: np.ndarray
    masks: dict[int, np.ndarray]
    output: np.ndarray
    output_id: int
    priority: int = 0  # raised when the box must win over smaller boxes it overlaps

    def sample(self, domain: InputDomain, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` flat inputs drawn uniformly from the part of the domain inside the box."""
        out = np.empty((n, domain.n_features))
        for i, f in enumerate(domain.features):
            if f.kind == CATEGORICAL:
                out[:, i] = rng.choice(np.asarray(f.values)[self.masks[i]], size=n)
                continue
            lo, hi = max(self.lower[i], f.lower), min(self.upper[i], f.upper)
            if f.kind == INTEGER:
                out[:, i] = rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=n)
            else:
                out[:, i] = rng.uniform(lo, hi, size=n)
        return out

    def log_volume(self, domain: InputDomain) -> float:
        """Log of the box's share of the domain (categorical: share of codes)."""
        total = 0.0
        for i, f in enumerate(domain.features):
            if f.kind == CATEGORICAL:
                share = self.masks[i].mean()
            else:
                span = f.upper - f.lower
                share = 1.0 if span <= 0 else (min(self.upper[i], f.upper) - max(self.lower[i], f.lower)) / span
            total += np.log(max(share, 1e-12))
        return float(total)


class BoxModel:
    """Recovered leaves over ``domain``; :meth:`predict` answers output rows for flat inputs."""

    def __init__(self, domain: InputDomain, boxes: list[Box], n_outputs: int):
        self.domain = domain
        self.boxes = list(boxes)
        self.n_outputs = int(n_outputs)
        self.categorical = [i for i, f in enumerate(domain.features) if f.kind == CATEGORICAL]
        self.ordered = [i for i, f in enumerate(domain.features) if f.kind != CATEGORICAL]
        self._arrays: tuple | None = None

    def add(self, box: Box) -> None:
        self.boxes.append(box)
        self._arrays = None

    def promote(self, index: int) -> None:
        """Let box ``index`` win wherever it overlaps others (it was found right where they were wrong)."""
        self.boxes[index].priority = max(box.priority for box in self.boxes) + 1
        self._arrays = None

    def __len__(self) -> int:
        return len(self.boxes)

    # -- dense arrays (rebuilt lazily after boxes are added) ------------------------------
    def arrays(self):
        """(lower (B, d_ordered), upper, {feature: mask (B, m)}, outputs (B, k), output ids (B,), rank (B,))."""
        if self._arrays is None:
            b = self.boxes
            lower = np.array([[box.lower[i] for i in self.ordered] for box in b]).reshape(len(b), len(self.ordered))
            upper = np.array([[box.upper[i] for i in self.ordered] for box in b]).reshape(len(b), len(self.ordered))
            masks = {i: np.array([box.masks[i] for box in b]).reshape(len(b), -1) for i in self.categorical}
            outputs = np.array([box.output for box in b], dtype=np.float64).reshape(len(b), self.n_outputs)
            ids = np.array([box.output_id for box in b], dtype=np.int64)
            # Promoted boxes first, then smaller ones: the rank decides between boxes an input lies in.
            volume = [box.log_volume(self.domain) for box in b]
            priority = [-box.priority for box in b]
            rank = np.empty(len(b), dtype=np.int64)
            rank[np.lexsort((volume, priority))] = np.arange(len(b))
            self._arrays = (lower, upper, masks, outputs, ids, rank)
        return self._arrays

    def misses(self, flat: np.ndarray) -> np.ndarray:
        """(n, B) count of features on which each input lies outside each box."""
        lower, upper, masks, *_ = self.arrays()
        xo = flat[:, self.ordered]
        miss = ((xo[:, None, :] < lower[None]) | (xo[:, None, :] > upper[None])).sum(axis=2)
        for i in self.categorical:
            values = np.asarray(self.domain.features[i].values)
            code = np.abs(flat[:, i, None] - values[None, :]).argmin(axis=1)
            miss += ~masks[i][:, code].T.astype(bool)
        return miss

    def box_index(self, flat: np.ndarray) -> np.ndarray:
        """Index of the box that answers each flat input (see the module docstring)."""
        *_, rank = self.arrays()
        key = self.misses(flat) * (len(self.boxes) + 1) + rank[None, :]
        return key.argmin(axis=1)

    def predict_ids(self, flat: np.ndarray) -> np.ndarray:
        return self.arrays()[4][self.box_index(flat)]

    def predict(self, flat: np.ndarray) -> np.ndarray:
        return self.arrays()[3][self.box_index(flat)]

    def contains(self, flat: np.ndarray, output_id: int) -> np.ndarray:
        """Whether each input lies inside some box whose output is ``output_id``."""
        if not self.boxes:
            return np.zeros(len(flat), dtype=bool)
        ids = self.arrays()[4]
        return ((self.misses(flat) == 0) & (ids[None, :] == output_id)).any(axis=1)

    # -- export -----------------------------------------------------------------------------
    def to_torch(self):
        """A torch module computing :meth:`predict` on inputs shaped like the domain."""
        import torch

        lower, upper, masks, outputs, _, rank = self.arrays()
        domain, ordered, categorical = self.domain, self.ordered, self.categorical
        n_boxes = len(self.boxes)

        class BoxModule(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("lower", torch.as_tensor(lower, dtype=torch.float32))
                self.register_buffer("upper", torch.as_tensor(upper, dtype=torch.float32))
                self.register_buffer("outputs", torch.as_tensor(outputs, dtype=torch.float32))
                self.register_buffer("key_offset", torch.as_tensor(rank, dtype=torch.float32))
                self.ordered = list(ordered)
                self.categorical = list(categorical)
                for i in self.categorical:
                    values = np.asarray(domain.features[i].values, dtype=np.float32)
                    self.register_buffer(f"values_{i}", torch.as_tensor(values))
                    self.register_buffer(f"miss_{i}", torch.as_tensor(1.0 - masks[i].T, dtype=torch.float32))

            def forward(self, x):
                flat = x.reshape(x.shape[0], -1)
                miss = torch.zeros(flat.shape[0], n_boxes, dtype=torch.float32)
                if self.ordered:
                    xo = flat[:, self.ordered].unsqueeze(1)
                    out_of_range = (xo < self.lower.unsqueeze(0)) | (xo > self.upper.unsqueeze(0))
                    miss = miss + out_of_range.to(torch.float32).sum(dim=2)
                for i in self.categorical:
                    values = getattr(self, f"values_{i}")
                    code = (flat[:, i : i + 1] - values.unsqueeze(0)).abs().argmin(dim=1)
                    miss = miss + getattr(self, f"miss_{i}")[code]
                key = miss * float(n_boxes + 1) + self.key_offset.unsqueeze(0)
                return self.outputs[key.argmin(dim=1)]

        return BoxModule().eval()


def save_box_model_onnx(path, model: BoxModel) -> None:
    """Write ``model`` as ONNX: input ``input`` (n, *shape) float32, output ``probabilities``."""
    import torch

    module = model.to_torch()
    example = torch.zeros((2, *model.domain.shape), dtype=torch.float32)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, (example,), str(path), input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "n"}, "probabilities": {0: "n"}}, opset_version=17, dynamo=False,
        )
