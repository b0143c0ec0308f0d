"""The shift detector: fit once on a reference sample, then test any number of batches.

Methods (``method=`` one name, several joined by ``+``, or a list):

* ``bbsd``: black-box shift detection (Lipton et al. 2018) on the model's outputs: a KS test
  per output dimension (class probability), Bonferroni- or Holm-corrected.
* ``labels``: a chi-square test on the predicted labels (argmax of the outputs, or the
  outputs themselves when they are labels).
* ``univariate``: one test per input feature (KS when continuous, chi-square when the
  reference shows at most ``max_categories`` values), corrected.
* ``mmd``: the kernel two-sample test on all input features at once (permutation p-value).
* ``classifier``: a domain classifier's held-out accuracy against chance (binomial test).
* ``auto``: ``bbsd`` when probabilities were given (``labels`` when only labels were),
  plus ``univariate`` and ``mmd`` on the inputs.

Several methods are combined by Bonferroni: the batch is called shifted when the smallest
method p-value times the number of methods is at most ``alpha``. Each method's p-value is
valid (it already corrects its own features), so the whole decision's false-alarm rate is
at most ``alpha``.

Inputs are flattened (images too). For the kernel and classifier tests, wide inputs (more
than ``components`` features) are first mapped by a fixed reduction fitted on the reference
(principal components; ``reduce="random"`` for a Gaussian random projection), as Failing
Loudly recommends. Principal components are fitted on half the reference and the tests
compare with the other half: components fitted on the very rows a batch is compared with
fit those rows' noise, and clean batches would look shifted. The univariate tests keep every raw feature (a reduction averages away a
change confined to a few features or to the noise floor of pixels) unless ``reduce`` names
a reduction, which then feeds them too.

Streams: fit once, then call ``test`` on each window. ``test`` is a pure function of the
fitted reference and the batch (its randomness restarts from ``seed`` on every call), so the
same window always gets the same answer. The reference is sorted once at ``fit``, so a batch
of n rows costs, per feature, a sort of the batch and a binary search into the reference,
O(n log(n m)); mmd costs O((r + s)^2 (w + permutations)) with r, s = reference and batch rows
kept for the kernel (at most ``kernel_rows``) and w the features after reduction; bbsd the
same as univariate over the k outputs; classifier a logistic regression on 2s rows.
Measured (auto with 10-class outputs, reference of 1,000 rows, one busy core): 30 or 64
features, 15-30 ms per call for 10-100 rows, 90 ms for 1,000, 110-130 ms for 10,000;
784 pixels, 35-55 ms for 10-100 rows, 175 ms for 1,000, 1.3 s for 10,000.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError, UsageError
from .classifier import MIN_ROWS as CLASSIFIER_MIN_ROWS
from .classifier import classifier_test
from .kernel import gaussian_kernel, median_width, mmd_permutation_test
from .reduce import REDUCTIONS, fit_reduction
from .result import ShiftTest
from .univariate import CORRECTIONS, adjust, category_counts, chi2_columns, chi2_counts, ks_columns

METHODS = ("bbsd", "labels", "univariate", "mmd", "classifier")
OUTPUT_METHODS = ("bbsd", "labels")
MIN_REFERENCE_ROWS = 20
MIN_SAMPLE_ROWS = 5


class ShiftDetector:
    """Two-sample tests of a batch against a reference sample (see the module docstring).

    The constructor only stores its arguments; ``fit`` checks them.
    """

    def __init__(
        self,
        method: str | Sequence[str] = "auto",
        alpha: float = 0.05,
        seed: int = 0,
        *,
        correction: str = "bonferroni",
        reduce: str = "auto",
        components: int = 32,
        permutations: int = 200,
        kernel_rows: int = 500,
        max_categories: int = 10,
        categorical: Sequence[int] | None = None,
    ):
        self.method = method
        self.alpha = alpha
        self.seed = seed
        self.correction = correction
        self.reduce = reduce
        self.components = components
        self.permutations = permutations
        self.kernel_rows = kernel_rows
        self.max_categories = max_categories
        self.categorical = categorical

    # ---------------------------------------------------------------- fitting
    def fit(self, reference_inputs: Any, reference_outputs: Any = None) -> ShiftDetector:
        """Remember the reference sample (inputs, and the model's outputs on them if given)."""
        self._validate_params()
        if reference_inputs is None and reference_outputs is None:
            raise DataError("the reference sample is empty: give reference inputs, outputs or both")
        rng = np.random.default_rng([int(self.seed), 0])
        x = None if reference_inputs is None else _rows(reference_inputs, "reference inputs")
        out = None if reference_outputs is None else _outputs(reference_outputs, "reference outputs")
        n = len(x) if x is not None else len(out)
        if out is not None and x is not None and len(out) != n:
            raise DataError(f"reference outputs have {len(out)} rows but the reference inputs have {n}")
        if n < MIN_REFERENCE_ROWS:
            raise DataError(f"the reference sample has {n} rows; a shift test needs at least {MIN_REFERENCE_ROWS}")
        self.methods_ = self._resolve_methods(has_inputs=x is not None, outputs=out)
        self.n_reference_ = n
        self.input_shape_ = None if x is None else tuple(np.shape(reference_inputs)[1:])
        self.output_width_ = None if out is None else (0 if out.ndim == 1 else out.shape[1])
        if x is not None:
            self._fit_inputs(x.reshape(n, -1), rng)
        if out is not None:
            self._fit_outputs(out)
        return self

    def _validate_params(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be a number in (0, 1), got {self.alpha!r}")
        if self.correction not in CORRECTIONS:
            raise UsageError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if self.reduce not in REDUCTIONS:
            raise UsageError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {self.reduce!r}")
        for name, low in (("components", 1), ("permutations", 19), ("kernel_rows", 10), ("max_categories", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise UsageError(f"{name} must be an integer of at least {low}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")
        _method_names(self.method)

    def _resolve_methods(self, has_inputs: bool, outputs: np.ndarray | None) -> list[str]:
        names = _method_names(self.method)
        if names == ["auto"]:
            names = []
            if outputs is not None:
                names.append("labels" if outputs.ndim == 1 else "bbsd")
            if has_inputs:
                names += ["univariate", "mmd"]
            return names
        for name in names:
            if name in OUTPUT_METHODS and outputs is None:
                raise DataError(f"method {name} tests the model's outputs: pass reference_outputs to fit")
            if name not in OUTPUT_METHODS and not has_inputs:
                raise DataError(f"method {name} tests the inputs: pass reference_inputs to fit")
        if "bbsd" in names and outputs is not None and outputs.ndim == 1:
            raise DataError("method bbsd needs class probabilities (n, k); with labels only use method labels")
        return names

    def _fit_inputs(self, flat: np.ndarray, rng: np.random.Generator) -> None:
        # The kernel and classifier tests see a reduction of wide inputs (``auto``: principal
        # components when there are more than ``components`` features). The univariate tests
        # see every raw feature unless a reduction is asked for by name: a reduction averages
        # away changes confined to a few features (noise on pixels, one shifted column).
        kind = self.reduce
        if kind == "auto":
            kind = "pca" if flat.shape[1] > self.components else "none"
        held_out = flat
        if kind == "pca":
            # Principal components fitted on some rows fit those rows better than any new
            # batch (they carry the rows' own noise), so tests against those rows would see a
            # shift that is not there. Fit on half the reference, compare with the other half.
            order = rng.permutation(len(flat))
            half = len(flat) // 2
            fit_rows, held_out = flat[order[:half]], flat[order[half:]]
            self.kernel_map_ = fit_reduction("pca", fit_rows, int(self.components), rng)
        else:
            self.kernel_map_ = fit_reduction(kind, flat, int(self.components), rng)
        named = self.reduce in ("pca", "random")
        self.feature_map_ = self.kernel_map_ if named else fit_reduction("none", flat, int(self.components), rng)
        if "univariate" in self.methods_:
            z = self.feature_map_.transform(held_out if self.feature_map_.kind == "pca" else flat)
            self._fit_univariate(z)
        if "mmd" in self.methods_ or "classifier" in self.methods_:
            z = self.kernel_map_.transform(held_out)
            # Raw features are standardised; principal components keep their own scale
            # (dividing would inflate the noisy ones).
            if self.kernel_map_.kind == "none":
                scale = z.std(axis=0)
                self.scale_ = np.where(scale > 0, scale, 1.0)
            else:
                self.scale_ = np.ones(z.shape[1])
            self.centre_ = z.mean(axis=0)
            rows = z if len(z) <= self.kernel_rows else z[rng.choice(len(z), int(self.kernel_rows), replace=False)]
            self.kernel_reference_ = (rows - self.centre_) / self.scale_
            if "mmd" in self.methods_:
                self.width_ = median_width(self.kernel_reference_, rng)
                self.reference_kernel_ = gaussian_kernel(self.kernel_reference_, self.kernel_reference_, self.width_)

    def _fit_univariate(self, z: np.ndarray) -> None:
        width = z.shape[1]
        chosen: set[int] = set()
        if self.feature_map_.kind == "none":
            if self.categorical is not None:
                chosen = {int(j) for j in self.categorical}
                if any(j < 0 or j >= width for j in chosen):
                    raise UsageError(f"categorical feature indices must be in [0, {width}), got {sorted(chosen)}")
            else:
                chosen = {j for j in range(width) if np.unique(z[:, j]).size <= self.max_categories}
        self.sorted_reference_ = np.sort(z, axis=0)
        self.categorical_ = np.array([j in chosen for j in range(width)], dtype=bool)
        self.categories_ = [np.unique(z[:, j]) for j in np.flatnonzero(self.categorical_)]
        self.reference_counts_ = [category_counts(z[:, j], c) for j, c in zip(np.flatnonzero(self.categorical_), self.categories_)]

    def _fit_outputs(self, out: np.ndarray) -> None:
        labels = _labels(out)
        self.classes_ = np.unique(labels)
        self.reference_label_counts_ = category_counts(labels, self.classes_)
        if out.ndim == 2:
            # Two probabilities that sum to one carry one dimension's information: test it once.
            self.output_columns_ = [1] if out.shape[1] == 2 else list(range(out.shape[1]))
            self.sorted_outputs_ = np.sort(out[:, self.output_columns_], axis=0)

    # ---------------------------------------------------------------- testing
    def test(self, sample_inputs: Any, sample_outputs: Any = None) -> ShiftTest:
        """Test one batch (inputs, and the model's outputs on them when the reference had them)."""
        if not hasattr(self, "methods_"):
            raise UsageError("this ShiftDetector is not fitted yet: call fit(reference) before test(sample)")
        x, out = self._check_sample(sample_inputs, sample_outputs)
        rng = np.random.default_rng([int(self.seed), 1])
        n = len(x) if x is not None else len(out)
        results: dict[str, dict] = {}
        for name in self.methods_:
            if name in OUTPUT_METHODS:
                results[name] = self._test_outputs(name, out)
            else:
                results[name] = self._test_inputs(name, x.reshape(n, -1), rng)
        decider = min(results, key=lambda name: results[name]["p_value"])
        p_value = min(1.0, len(results) * results[decider]["p_value"])
        per_feature = results.get("univariate", results.get("bbsd", {})).get("per_feature")
        details = {
            "alpha": float(self.alpha),
            "n_reference": self.n_reference_,
            "n_sample": n,
            "combination": "bonferroni over methods" if len(results) > 1 else "single method",
            "decided_by": decider,
            "methods": {name: {k: v for k, v in r.items() if k != "per_feature"} for name, r in results.items()},
        }
        if x is not None:
            details["reduction"] = {"univariate": self.feature_map_.kind, "kernel": self.kernel_map_.kind}
        return ShiftTest(
            shifted=bool(p_value <= self.alpha),
            p_value=float(p_value),
            statistic=float(results[decider]["statistic"]),
            method="+".join(self.methods_),
            per_feature=per_feature,
            details=details,
        )

    def _check_sample(self, sample_inputs: Any, sample_outputs: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        x = out = None
        if self.input_shape_ is not None:
            if sample_inputs is None:
                raise DataError("the detector was fitted on inputs: pass sample inputs to test")
            x = _rows(sample_inputs, "sample inputs")
            if tuple(np.shape(sample_inputs)[1:]) != self.input_shape_:
                raise DataError(
                    f"sample rows have shape {tuple(np.shape(sample_inputs)[1:])} but the reference rows have {self.input_shape_}"
                )
        needs_outputs = any(name in OUTPUT_METHODS for name in self.methods_)
        if needs_outputs:
            if sample_outputs is None:
                raise DataError("the detector was fitted on the model's outputs: pass sample outputs to test")
            out = _outputs(sample_outputs, "sample outputs")
            width = 0 if out.ndim == 1 else out.shape[1]
            if width != self.output_width_:
                raise DataError(f"sample outputs have {width or 'no'} columns but the reference outputs have {self.output_width_ or 'none'}")
            if x is not None and len(out) != len(x):
                raise DataError(f"sample outputs have {len(out)} rows but the sample inputs have {len(x)}")
        n = len(x) if x is not None else len(out)
        if n < MIN_SAMPLE_ROWS:
            raise DataError(f"the sample has {n} rows; a shift test needs at least {MIN_SAMPLE_ROWS}")
        return x, out

    def _test_inputs(self, name: str, flat: np.ndarray, rng: np.random.Generator) -> dict:
        if name == "univariate":
            return self._univariate(self.feature_map_.transform(flat))
        z = self.kernel_map_.transform(flat)
        rows = z if len(z) <= self.kernel_rows else z[rng.choice(len(z), int(self.kernel_rows), replace=False)]
        rows = (rows - self.centre_) / self.scale_
        if name == "mmd":
            stat, p = mmd_permutation_test(
                self.kernel_reference_, rows, self.width_, int(self.permutations), rng, self.reference_kernel_
            )
            return {"p_value": p, "statistic": stat, "kernel_width": self.width_, "rows": [len(self.kernel_reference_), len(rows)]}
        accuracy, p, extra = classifier_test(self.kernel_reference_, rows, rng)
        return {"p_value": p, "statistic": accuracy, "min_rows": CLASSIFIER_MIN_ROWS, **extra}

    def _univariate(self, z: np.ndarray) -> dict:
        categorical = self.categorical_
        stat, p = np.zeros(z.shape[1]), np.ones(z.shape[1])
        stat[~categorical], p[~categorical] = ks_columns(self.sorted_reference_[:, ~categorical], z[:, ~categorical])
        if categorical.any():
            stat[categorical], p[categorical] = chi2_columns(self.reference_counts_, z[:, categorical], self.categories_)
        tests = ["chi2" if c else "ks" for c in categorical]
        return _summarise(self.feature_map_.names, tests, stat, p, self.correction)

    def _test_outputs(self, name: str, out: np.ndarray) -> dict:
        if name == "labels":
            stat, p = chi2_counts(self.reference_label_counts_, category_counts(_labels(out), self.classes_))
            return {"p_value": p, "statistic": stat}
        names = [f"class {j}" for j in self.output_columns_]
        stat, p = ks_columns(self.sorted_outputs_, out[:, self.output_columns_])
        return _summarise(names, ["ks"] * len(names), stat, p, self.correction)


# -------------------------------------------------------------------- helpers
def _method_names(method: Any) -> list[str]:
    if isinstance(method, str):
        names = method.split("+")
    elif isinstance(method, Sequence) and all(isinstance(m, str) for m in method):
        names = list(method)
    else:
        raise UsageError(f"method must be a name or a list of names, got {method!r}")
    names = [n.strip() for n in names]
    if names == ["auto"]:
        return names
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names or len(set(names)) != len(names):
        raise UsageError(f"method must be auto or distinct names from {', '.join(METHODS)}, got {method!r}")
    return names


def _rows(data: Any, what: str) -> np.ndarray:
    try:
        x = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric arrays") from None
    if x.ndim < 2:
        raise DataError(f"{what} must have one row per example (2-D or more), got shape {x.shape}; reshape one feature with x.reshape(-1, 1)")
    if x.shape[0] == 0 or x[0].size == 0:
        raise DataError(f"{what} are empty (shape {x.shape})")
    if not np.isfinite(x).all():
        raise DataError(f"{what} contain NaN or infinite values ({int((~np.isfinite(x)).sum())} of {x.size})")
    return x


def _outputs(data: Any, what: str) -> np.ndarray:
    out = _rows(np.asarray(data)[:, None] if np.ndim(data) == 1 else data, what)
    if out.ndim > 2:
        raise DataError(f"{what} must be labels (n,) or probabilities (n, k), got shape {out.shape}")
    if out.shape[1] == 1 and np.ndim(data) == 1:
        if not np.array_equal(out, np.round(out)):
            raise DataError(f"{what} given as one value per row must be integer labels; give probabilities as (n, k)")
        return out[:, 0]
    return out


def _labels(out: np.ndarray) -> np.ndarray:
    return out if out.ndim == 1 else out.argmax(axis=1).astype(float)


def _summarise(names: list, tests: list[str], stat: np.ndarray, p: np.ndarray, correction: str) -> dict:
    adjusted = adjust(p, correction)
    best = int(np.argmin(adjusted))
    per_feature = [
        {"feature": names[j], "test": tests[j], "statistic": float(stat[j]), "p": float(p[j]), "p_adjusted": float(adjusted[j])}
        for j in range(len(names))
    ]
    return {
        "p_value": float(adjusted[best]),
        "statistic": float(stat[best]),
        "most_shifted": names[best],
        "correction": correction,
        "features": len(names),
        "per_feature": per_feature,
    }
