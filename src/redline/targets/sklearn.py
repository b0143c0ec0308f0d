"""scikit-learn classifiers as targets, in memory or loaded from a ``.skops`` file.

Inputs are flattened to (n, features) for the estimator. Every scikit-learn target is
trainable: by default its recipe is a clone of the estimator fitted on new data.
Logistic regression and MLP classifiers (also behind StandardScaler/MinMaxScaler in a
Pipeline) are white-box through an exact PyTorch mirror of their fitted parameters.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError, UnsafeModelError, UsageError
from ._common import (
    check_labels,
    check_outputs_kind,
    check_probabilities,
    first_line,
    random_inputs,
)
from .base import Capabilities, InputSpec, Target
from .gate import require_safe

# Types skops does not trust by default but that are plain fitted state of scikit-learn
# estimators (tree arrays, optimiser state, neighbour indexes): no code runs when they load.
TRUSTED_SKOPS_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)

_ACTIVATIONS = ("identity", "relu", "tanh", "logistic")
# exp(mirror) and predict_proba are both float64; anything beyond this is a real mismatch.
_MIRROR_TOLERANCE = 1e-6

Trainer = Callable[[np.ndarray, np.ndarray, int], Target]


class SklearnTarget(Target):
    """A fitted scikit-learn classifier.

    Class labels become column/label indices: integer classes keep their value (so a model
    that never saw class 2 still answers with ``n_classes`` columns), other classes are
    numbered in ``classes_`` order.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        input_spec: InputSpec,
        n_classes: int | None = None,
        spec: str = "sklearn",
        outputs: str = "probabilities",
        trainer: Trainer | None = None,
    ):
        super().__init__()
        check_outputs_kind(outputs)
        if not callable(getattr(estimator, "predict", None)):
            raise TargetError(f"{spec}: {type(estimator).__name__} has no predict method")
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None and int(n_features) != input_spec.n_features:
            raise TargetError(
                f"{spec}: the estimator takes {n_features} features, but inputs are shaped {input_spec.shape}"
            )
        refuse_multi_output(estimator, spec)
        self.estimator = estimator
        self.spec = spec
        self.input_spec = input_spec
        self._requested_outputs = outputs
        self._columns, self.n_classes = _class_columns(estimator, n_classes, spec)
        if outputs == "probabilities" and not hasattr(estimator, "predict_proba"):
            outputs = "labels"
        self._custom_trainer = trainer
        self.trainer = trainer if trainer is not None else self._refit
        self.whitebox_reason = self._whitebox_reason(outputs)
        self.capabilities = Capabilities(
            outputs=outputs, gradients=self.whitebox_reason is None, trainable=True, remote=False
        )
        self._mirror: Any = None
        self._mirror_lock = threading.Lock()

    # -- queries -----------------------------------------------------------------------
    def _predict(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        if self.capabilities.outputs == "probabilities":
            p = check_probabilities(self.estimator.predict_proba(flat), len(x), len(self._columns), self.spec)
            full = np.zeros((len(x), self.n_classes))
            full[:, self._columns] = p
            return full
        predicted = np.asarray(self.estimator.predict(flat))
        return check_labels(self._columns[np.searchsorted(self._classes, predicted)], len(x), self.n_classes, self.spec)

    def _predict_raw(self, x: Any) -> Any:
        # Flattened as ``_predict`` feeds the estimator, but unchecked both ways, so the
        # estimator's own input validation is what gets tested.
        if isinstance(x, np.ndarray) and x.ndim > 2:
            x = x.reshape(len(x), -1)
        if self.capabilities.outputs == "probabilities":
            return self.estimator.predict_proba(x)
        return self.estimator.predict(x)

    def sklearn_estimator(self) -> Any:
        return self.estimator

    def parameter_arrays(self) -> list[np.ndarray]:
        from .parameters import sklearn_parameter_arrays

        return sklearn_parameter_arrays(self.estimator)

    def _torch_logits(self, x: Any) -> Any:
        mirror = self._mirror if self._mirror is not None else self._build_mirror()
        return mirror(x.reshape(x.shape[0], -1))

    # -- training recipe ---------------------------------------------------------------
    def _refit(self, x: np.ndarray, y: np.ndarray, seed: int) -> SklearnTarget:
        """Clone the estimator (unfitted, same hyperparameters), seed it, fit it on (x, y)."""
        from sklearn.base import clone

        estimator = clone(self.estimator)
        seeds = {
            k: seed for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")
        }
        estimator.set_params(**seeds)
        estimator.fit(np.asarray(x).reshape(len(x), -1), np.asarray(y))
        return SklearnTarget(
            estimator,
            input_spec=self.input_spec,
            n_classes=self.n_classes,
            spec=self.spec,
            outputs=self._requested_outputs,
            trainer=self._custom_trainer,
        )

    # -- white-box mirror --------------------------------------------------------------
    @property
    def _classes(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)

    def _whitebox_reason(self, outputs: str) -> str | None:
        if outputs != "probabilities":
            return "the target answers labels only"
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed"
        if not np.array_equal(self._columns, np.arange(self.n_classes)):
            return "the estimator was not fitted on every class 0..n_classes-1"
        return mirror_support(self.estimator)

    def _build_mirror(self) -> Any:
        """Build the torch mirror on first use and check it against predict_proba once."""
        import torch

        from .sklearn_torch import build_mirror

        with self._mirror_lock:
            if self._mirror is None:
                mirror = build_mirror(self.estimator)
                x = random_inputs(self.input_spec, 16).reshape(16, -1).astype(np.float64)
                with torch.no_grad():
                    mine = torch.exp(mirror(torch.from_numpy(x))).numpy()
                theirs = self.estimator.predict_proba(x)
                if not np.allclose(mine, theirs, rtol=0, atol=_MIRROR_TOLERANCE):
                    raise TargetError(
                        f"{self.spec}: the PyTorch mirror of {type(self.estimator).__name__} disagrees with "
                        f"predict_proba by {np.abs(mine - theirs).max():.2g}; gradients are not trustworthy"
                    )
                self._mirror = mirror
        return self._mirror


def pipeline_steps(estimator: Any) -> list[Any]:
    """A Pipeline's steps that act, in order (nested Pipelines flattened; ``None`` and
    ``"passthrough"`` left out), or ``[estimator]`` for anything else."""
    if type(estimator).__name__ != "Pipeline":
        return [estimator]
    return [inner for _, step in estimator.steps if step is not None and step != "passthrough"
            for inner in pipeline_steps(step)]


def mirror_support(estimator: Any) -> str | None:
    """None if the estimator has an exact torch mirror, else the reason it has none."""
    name = type(estimator).__name__
    if name == "Pipeline":
        steps = pipeline_steps(estimator)
        if not steps:
            return "the pipeline has no step"
        for step in steps[:-1]:
            step_name = type(step).__name__
            if step_name not in ("StandardScaler", "MinMaxScaler") or getattr(step, "clip", False):
                return f"pipeline step {step_name} has no exact differentiable mirror"
        return mirror_support(steps[-1])
    if name == "LogisticRegression":
        return None
    if name == "MLPClassifier":
        if estimator.activation not in _ACTIVATIONS:
            return f"MLPClassifier activation {estimator.activation!r} has no mirror"
        if estimator.out_activation_ == "logistic" and estimator.n_outputs_ != 1:
            return "a multi-label MLPClassifier has no single probability vector"
        return None
    return f"{name} has no exact differentiable mirror (only LogisticRegression and MLPClassifier do)"


def outputs_per_row(estimator: Any) -> int:
    """How many answers the estimator gives per row: 1, or the outputs of a multi-output
    (multi-label) model, which has one ``classes_`` array per output or, for an MLP, one
    independent logistic unit per label."""
    steps = pipeline_steps(estimator)
    final = steps[-1] if steps else estimator
    classes = getattr(final, "classes_", None)
    if isinstance(classes, (list, tuple)):
        return len(classes)
    if isinstance(classes, np.ndarray) and (classes.ndim > 1 or (classes.dtype == object and len(classes)
                                                                 and isinstance(classes[0], np.ndarray))):
        return len(classes)
    if getattr(final, "multilabel_", False):  # OneVsRestClassifier fitted on a label matrix
        return max(len(getattr(final, "classes_", ())), 2)
    if _is_regressor(final):
        # Linear models keep one row of coefficients per target, neighbours the target matrix.
        coef, fitted_y = getattr(final, "coef_", None), getattr(final, "_y", None)
        if isinstance(coef, np.ndarray) and coef.ndim == 2 and coef.shape[0] > 1:
            return int(coef.shape[0])
        if isinstance(fitted_y, np.ndarray) and fitted_y.ndim == 2 and fitted_y.shape[1] > 1:
            return int(fitted_y.shape[1])
    n_outputs = getattr(final, "n_outputs_", 1)
    if type(final).__name__ == "MLPClassifier":  # n_outputs_ counts output units there
        return int(n_outputs) if getattr(final, "out_activation_", None) == "logistic" else 1
    if type(final).__name__ in ("MultiOutputClassifier", "MultiOutputRegressor", "ClassifierChain",
                                "RegressorChain"):
        return max(len(getattr(final, "estimators_", ())), 1)  # one estimator per output
    try:
        return max(int(n_outputs), 1)
    except (TypeError, ValueError):
        return 1


def _is_regressor(estimator: Any) -> bool:
    try:
        from sklearn.base import is_regressor
    except ImportError:
        return False
    try:
        return bool(is_regressor(estimator))
    except (AttributeError, TypeError, ValueError):  # a third-party estimator's tags
        return False


def refuse_multi_output(estimator: Any, spec: str) -> None:
    """TargetError for a model that answers several outputs per row (multi-output or
    multi-label): every check reads one answer per row."""
    n = outputs_per_row(estimator)
    if n > 1:
        raise TargetError(f"{spec}: {type(estimator).__name__} is a multi-output model ({n} outputs per row); "
                          "multi-output models are not supported: scan a model with one output per row")


def _class_columns(estimator: Any, n_classes: int | None, spec: str) -> tuple[np.ndarray, int]:
    """Column index of each entry of ``classes_``, and the number of classes."""
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise TargetError(f"{spec}: {type(estimator).__name__} is not a fitted classifier (it has no classes_)")
    classes = np.asarray(classes)
    integral = classes.dtype.kind in "iub" or (classes.dtype.kind == "f" and np.array_equal(classes, np.round(classes)))
    if integral and len(classes) and classes.min() >= 0:
        columns = classes.astype(np.int64)
    else:
        columns = np.arange(len(classes))
    needed = int(columns.max()) + 1 if len(columns) else 0
    if n_classes is None:
        n_classes = max(needed, 2)
    elif n_classes < needed:
        raise TargetError(f"{spec}: the estimator knows classes up to {needed - 1}, but n_classes is {n_classes}")
    return columns, int(n_classes)


def load_skops(
    path: str | Path,
    *,
    spec: str | None = None,
    input_spec: InputSpec | None = None,
    n_classes: int | None = None,
    outputs: str = "probabilities",
) -> Target:
    """Load a ``.skops`` file whose every type is trusted by skops or by :data:`TRUSTED_SKOPS_TYPES`.

    A classifier becomes a :class:`SklearnTarget`, a regressor a
    :class:`~redline.targets.regression.SklearnRegressorTarget` (``n_classes`` and
    ``outputs`` do not apply to it). ``input_spec`` defaults to ``n_features_in_`` features
    with default bounds; pass one (or let :func:`redline.targets.load_target` derive it from
    data) for real bounds.
    """
    path = Path(path)
    spec = spec or f"sklearn:{path}"
    require_safe(path)
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises assorted errors for files that are not its format
        raise TargetError(f"{path}: not a readable skops file ({type(exc).__name__}: {first_line(exc)})") from None
    refused = sorted(set(untrusted) - TRUSTED_SKOPS_TYPES)
    if refused:
        raise UnsafeModelError(f"{path}: refused to load: the skops file uses untrusted types: {', '.join(refused)}")
    estimator = sio.load(path, trusted=sorted(TRUSTED_SKOPS_TYPES))
    if input_spec is None:
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:
            raise TargetError(f"{path}: the model does not say how many features it takes; give data or input.shape")
        input_spec = InputSpec(shape=(int(n_features),), dtype="float64")
    from .regression import SklearnRegressorTarget, is_regressor

    if is_regressor(estimator):
        refuse_multi_output(estimator, spec)
        return SklearnRegressorTarget(estimator, input_spec=input_spec, spec=spec)
    return SklearnTarget(estimator, input_spec=input_spec, n_classes=n_classes, spec=spec, outputs=outputs)


def open_file(path: Path, request: Any) -> Target:
    """The adapter table's loader for ``sklearn:PATH`` and skops files (classifiers and regressors)."""
    target = load_skops(path, spec=request.spec, input_spec=request.input_spec, n_classes=request.n_classes)
    return fit_to_data(target, request)


def open_estimator(estimator: Any, request: Any) -> Target:
    """The adapter table's loader for an in-memory scikit-learn classifier or regressor."""
    input_spec = request.input_spec
    if input_spec is None:
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:
            raise UsageError(
                f"{request.spec}: cannot tell how many features the estimator takes; give data or input.shape"
            )
        input_spec = InputSpec(shape=(int(n_features),), dtype="float64")
    from .regression import SklearnRegressorTarget, is_regressor

    if is_regressor(estimator):
        refuse_multi_output(estimator, request.spec)
        target: Target = SklearnRegressorTarget(estimator, input_spec=input_spec, spec=request.spec)
    else:
        target = SklearnTarget(estimator, input_spec=input_spec, n_classes=request.n_classes, spec=request.spec)
    return fit_to_data(target, request)


def fit_to_data(target: Target, request: Any) -> Target:
    """Check a loaded model against the data it will be scanned with, before any query.

    A regressor needs data for regression and a classifier data for classification (a
    one-line UsageError says which way round, and the fix). A classifier's classes are then
    set against the data's labels: the model answers one column per class index it knows
    (see :class:`SklearnTarget`). When the data holds classes the model never saw and the
    model knows no class the data lacks (classes_ [0, 1, 3], labels 0..3), the model is
    widened to the data's classes; when each side has a class the other lacks (labels 1..k
    for a model fitted on 0..k-1), the numbering is off: the target keeps why in
    ``label_mismatch``, and every check that reads labels ends with it as a data error. A
    ``n_classes`` stated in the target config settles the count and skips this.
    """
    from .regression import SklearnRegressorTarget

    data = request.data
    task = getattr(data, "task", None)
    regressor = isinstance(target, SklearnRegressorTarget)
    name = type(target.sklearn_estimator()).__name__
    if regressor and task == "classification":
        raise UsageError(f"{target.spec}: {name} is a regressor but the data set {data.name!r} is for "
                         "classification: say task=regression (a DATA spec's #task=regression, or \"task\": "
                         "\"regression\" among the arrays)")
    if not regressor and task == "regression":
        raise UsageError(f"{target.spec}: {name} is a classifier but the data set {data.name!r} is for regression: "
                         "scan it with labelled classification data (drop task=regression)")
    if regressor or request.n_classes:
        return target
    assert isinstance(target, SklearnTarget)
    labels = _data_class_labels(data)
    if labels is None:
        return widen_classes(target, request.n_classes_hint)
    known = np.unique(target._columns)
    unseen = np.setdiff1d(labels, known)  # classes of the data the model never saw
    if not len(unseen):
        return target
    absent = np.setdiff1d(known, labels)  # classes of the model the data never shows
    if len(absent):
        # Refused by every check that reads labels, when it runs; checks that read none
        # (stealing, fuzzing) still apply to the model as it is.
        target.label_mismatch = f"{target.spec}: {_label_mismatch(labels, known, target._classes)}"
        return target
    return widen_classes(target, int(labels.max()) + 1)


def _data_class_labels(data: Any) -> np.ndarray | None:
    """The distinct labels of the data's reference roles (not the deployment sample, which
    may hold a class the model never saw), or None when there are none or they are not
    non-negative whole numbers (the checks refuse those with their own message)."""
    roles = getattr(data, "reference_roles", None)
    if roles is None or getattr(data, "task", None) != "classification":
        return None
    ys = [np.asarray(data.y(role)).reshape(-1) for role in roles if data.y(role) is not None and len(data.y(role))]
    if not ys:
        return None
    y = np.concatenate(ys)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    from ..data.labels import whole_numbers

    if not whole_numbers(y) or y.min() < 0:
        return None
    return np.unique(y.astype(np.int64))


def _label_mismatch(labels: np.ndarray, known: np.ndarray, classes: np.ndarray) -> str:
    """One line naming the data's labels and the model's classes, each holding one the other lacks."""
    named = "" if np.array_equal(known, classes) else f" (its classes_ {_label_set(classes)} in that order)"
    text = (f"the data's labels are {_label_set(labels)} but the model's classes are {_label_set(known)}{named}: "
            f"each has a class the other lacks, so the labels would be read as the wrong classes")
    if len(labels) == len(known) and np.array_equal(labels, known + 1):
        return text + "; the labels look numbered from 1 where the model's classes start at 0: subtract 1 from them"
    if len(labels) == len(known) and np.array_equal(labels, known - 1):
        return text + "; the labels look numbered from 0 where the model's classes start at 1: add 1 to them"
    return (text + "; is the numbering off by one? re-encode the labels as the model's classes (or state "
            "n_classes in the target config if the data really holds classes the model never saw)")


def _label_set(values: np.ndarray) -> str:
    """``0..9`` for a run of whole numbers, else the values listed (at most 8 shown)."""
    values = np.asarray(values)
    if (values.dtype.kind in "iu" and len(values) > 2
            and np.array_equal(values, np.arange(values[0], values[0] + len(values)))):
        return f"{values[0]}..{values[-1]}"
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values.tolist()[:8])
    return "{" + shown + (", ..." if len(values) > 8 else "") + "}"


def widen_classes(target: SklearnTarget, n_classes: int | None) -> SklearnTarget:
    """A model fitted without some class of the data still answers one column per class."""
    if n_classes is None or n_classes <= target.n_classes:
        return target
    return SklearnTarget(
        target.estimator,
        input_spec=target.input_spec,
        n_classes=n_classes,
        spec=target.spec,
        outputs=target.capabilities.outputs,
    )
