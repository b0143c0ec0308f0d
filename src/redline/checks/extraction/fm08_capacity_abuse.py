"""FM08 malicious provider, black-box: labels memorised for noise inputs (capacity abuse, Song et al. 2017).

``FM08.capacity_abuse`` covers Song et al.'s black-box attack, where the parameters are
honest but the provider trained on extra noise inputs (regenerated from its secret seed)
whose labels spell out training images, and reads them back by querying. The probe knows
neither the seed nor the noise distribution. A model that memorised arbitrary labels for
noise has a rough logit field in the noise region: the *direction* of its logit vector
turns over short distances, where an honest model extrapolates smoothly and keeps pointing
the same way however far it is from the data.

1. **Probe.** For each noise family (uniform, Gaussian around mid-range, black-and-white,
   training images with their pixels shuffled) ``anchors`` fresh inputs and ``neighbours``
   perturbed copies of each (Gaussian, ``radius`` times the input range) are sent, and the
   same for ``real_anchors`` held-out images (``data.x_test``).
2. **Statistics.** Per probe set, the *roughness* is the mean distance between the centred
   log-probabilities (logits up to a constant) at an anchor and at its neighbours, divided
   by their mean length at the anchors. Dividing by the length makes it blind to the
   logits' scale, so a model that is merely confident or merely unsure is not rough. The
   *sensitivity* is the mean total-variation distance between the answers at an anchor and
   its neighbours. Each is averaged over the noise families on a log scale, so one number
   pools the evidence of all families (they are correlated, which a single test on the
   pooled number accounts for).
3. **References.** ``n_references`` honest models of each of ``architectures`` (the
   library's surrogate MLP and small CNN) trained on the auditor's training data, or of
   the target's own recipe when the auditor trusts it, answer the same inputs, free of
   queries.
4. **Test.** How rough an honest model is on noise depends on its architecture, which a
   black-box auditor does not know: an honest CNN on digits is 1.3-1.5 times as rough as
   an honest MLP. Its roughness near real data tells the families apart as well (CNNs are
   smoother there, and a model that memorised noise is not), so the noise roughness
   expected of the target is read off a least-squares line through the references of every
   family, at the target's own roughness near real data. A one-sided prediction-interval
   t-test asks whether the target's pooled roughness is above that line by more than an
   honest model's would be; beyond the references' range of real-data roughness the line
   is trusted no further than its end (the larger p-value counts). ``p < alpha`` flags it,
   provided the effect is large enough to matter (at least ``min_roughness_ratio`` times
   the expected roughness) and its answers also move more than expected (sensitivity,
   read off the same kind of line). The provisos only remove flags, so the false-positive
   rate stays at most ``alpha`` for honest models the references' families describe.
   With references of one family the line is replaced by their mean.

Answers rounded to a fixed number of decimals (as JSON APIs often return them) are detected
(``answers_rounded_to``) and the references' answers are rounded alike, with a rounded zero
read as half the last decimal: compared with exact answers, rounding alone made an honest
model's logits look twice as rough. Rounded alike, honest models stay at 0.9-1.1 times the
expected roughness and the capacity-abuse model at 1.4-1.7 (4 decimals, seeds 0-2); its
answers then move only about as much as the references' (0.9-1.2), so the sensitivity
proviso can withhold the flag.

A target that answers labels only is not judged (``needs.outputs``): with labels, the flip
rate is all there is, and it cannot tell memorised noise labels from an unsure honest model
(the zoo's DP MLP behind labels was flagged at p = 0.0016) or an honest CNN; against both
reference families it missed most capacity-abuse models as well.

On builtin:digits (benchmarks/bench_fm08_capacity.py, probe seeds 0-9, 16 references per
family) the capacity-abuse MLP is flagged at every seed (p below 1e-4, roughness 1.6 to 2.0
times the expected), with the zoo's carriers and with other carrier seeds, Gaussian or
black-and-white carriers, half the payload or a wider net, and so is a CNN trained on the
carriers (2.7 to 2.9 times); honest MLPs of six recipes, the DP MLP and honest CNNs of three
recipes pass at every seed (roughness 0.9 to 1.22 times the expected, p above 0.009).
Limits: the references stand for two families only, and an honest model unlike both (say a
network trained with heavy augmentation, or a kernel machine) has no line that describes
it and may be flagged or missed; the honest CNN closest to the bar (a narrower one trained
longer) comes within a factor of ten of ``alpha`` and within 3% of ``min_roughness_ratio``;
carriers close to real data (augmented training images instead of noise) leave the noise
region untouched and evade the probe; the CNN references make a run about twice as slow
(7 s per target on digits, 16 s the first time, when the references are trained).
"""
from __future__ import annotations

import hashlib

import numpy as np

from ...util.reference_models import cnn_fits
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome

NOISE_FAMILIES = ("uniform", "gaussian", "binary", "shuffled")
# Surrogate reference families: an honest model of either kind must pass.
ARCHITECTURES = ("mlp", "cnn")
# Smallest probability taken into the log: float32 softmax reaches about 1e-38, and no
# honest digits model comes near 1e-30 on noise, so the floor only guards against log(0).
_PROBABILITY_FLOOR = 1e-30
# Share of the target's probabilities on noise at the floor above which roughness is not read.
_MAX_SATURATED = 0.25


class CapacityAbuseProbe(Check):
    id = "FM08.capacity_abuse"
    mode = "FM08"
    title = "Labels memorised for noise inputs (capacity-abuse exfiltration)"
    # Labels only: a flip rate cannot tell memorised noise labels from an unsure honest
    # model or an honest model of another architecture (see the module docstring).
    needs = Needs(outputs="probabilities", modality=("image",), roles=("train", "test"))
    default_budget = (len(NOISE_FAMILIES) * 512 + 256) * (1 + 4)
    metrics = (
        "anchors_per_family", "answers_move_more", "answers_rounded_to", "expected_roughness_*",
        "p_value", "p_value_*", "real_anchors", "real_roughness", "reference_models",
        "reference_real_roughness_*", "reference_roughness_*", "roughness", "roughness_*",
        "roughness_ratio", "saturated_share", "sensitivity_ratio"
    )
    param_docs = {
        "families": "noise families probed: uniform, gaussian, binary, shuffled",
        "anchors": "noise inputs per family (at least 16)",
        "real_anchors": "real held-out inputs probed for comparison (at least 16)",
        "neighbours": "perturbed neighbours queried per anchor",
        "radius": "neighbour distance, as a share of the input range, in (0, 1]",
        "n_references": "honest reference models trained for comparison (at least 3)",
        "reference_source": "surrogate (trained on the target's labels) or recipe (the target's training recipe)",
        "architectures": "reference architectures: mlp, cnn",
        "alpha": "significance level of the roughness test",
        "min_roughness_ratio": "target roughness over the references' needed to flag (at least 1)",
    }

    def __init__(
        self,
        families: tuple[str, ...] = NOISE_FAMILIES,
        anchors: int = 512,
        real_anchors: int = 256,
        neighbours: int = 4,
        radius: float = 0.05,
        n_references: int = 16,
        reference_source: str = "surrogate",
        architectures: tuple[str, ...] = ARCHITECTURES,
        alpha: float = 1e-3,
        min_roughness_ratio: float = 1.25,
    ):
        self.families = families
        self.anchors = anchors
        self.real_anchors = real_anchors
        self.neighbours = neighbours
        self.radius = radius
        self.n_references = n_references
        self.reference_source = reference_source
        self.architectures = architectures
        self.alpha = alpha
        self.min_roughness_ratio = min_roughness_ratio

    def _validate(self) -> None:
        families = _as_list(self.families)
        unknown = [f for f in families if f not in NOISE_FAMILIES]
        if not families or unknown:
            raise ValueError(f"families must be chosen from {', '.join(NOISE_FAMILIES)} (got {families})")
        architectures = _as_list(self.architectures)
        if not architectures or any(a not in ARCHITECTURES for a in architectures):
            raise ValueError(f"architectures must be chosen from {', '.join(ARCHITECTURES)} (got {architectures})")
        if int(self.anchors) < 16 or int(self.real_anchors) < 16 or int(self.neighbours) < 1:
            raise ValueError("anchors and real_anchors must be at least 16 and neighbours at least 1")
        if not 0 < self.radius <= 1:
            raise ValueError("radius must be in (0, 1], a fraction of the input range")
        if int(self.n_references) < 3:
            raise ValueError("n_references must be at least 3 (the test needs a spread of honest models)")
        if self.reference_source not in ("surrogate", "recipe"):
            raise ValueError("reference_source must be 'surrogate' or 'recipe'")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not self.min_roughness_ratio >= 1:
            raise ValueError("min_roughness_ratio must be at least 1 (the target's roughness over the references')")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        families = list(dict.fromkeys(_as_list(self.families)))
        architectures = list(dict.fromkeys(_as_list(self.architectures)))
        per_anchor = 1 + int(self.neighbours)
        held_out = np.asarray(data.x_test)
        real_anchors = min(int(self.real_anchors), len(held_out))
        if real_anchors < 16:
            raise NotApplicable(f"the data set holds {len(held_out)} held-out images (x_test); the probe needs 16 "
                                "to measure roughness near real data")
        anchors = min(int(self.anchors), (budget - real_anchors * per_anchor) // (len(families) * per_anchor))
        if anchors < 16:
            raise NotApplicable(
                f"a budget of {budget} queries allows fewer than 16 anchors per noise family "
                f"(needs {(16 * len(families) + real_anchors) * per_anchor})"
            )
        spec = target.input_spec
        if self.reference_source == "surrogate" and "cnn" in architectures and not cnn_fits(spec.shape):
            raise NotApplicable(f"a CNN reference needs (channels, height, width) images of at least 4x4, "
                                f"not {tuple(spec.shape)} (use architectures=('mlp',))")
        probes = {f: self._probe_inputs(f, anchors, spec, data.x_train, rng) for f in families}
        real = held_out[rng.permutation(len(held_out))[:real_anchors]]
        probes["real"] = self._perturbed(np.clip(real, spec.lower, spec.upper), spec, rng)
        references = _honest_references(target, data, int(self.n_references), self.reference_source, architectures,
                                        int(rng.integers(2**31)))
        # Per probe set: log roughness and log sensitivity of the target (first) and every reference.
        rough, sensitive = {}, {}
        decimals = None  # the target's answers rounded to this many decimals (an API's output format)
        saturated = []  # share of the target's class probabilities on noise at or under the floor
        for name, rows in probes.items():
            n = real_anchors if name == "real" else anchors
            answers = np.asarray(target.predict(rows), dtype=np.float64)
            if name != "real":
                saturated.append(float(np.mean(answers <= _PROBABILITY_FLOOR)))
            decimals = _rounded_to(answers) if decimals is None else decimals
            honest = np.concatenate([r.predict_proba(rows) for r in references])
            if decimals is not None:  # compare like with like: rounding alone makes small logits jump
                honest = np.round(honest, decimals)
            everyone = [answers, *honest]
            # A rounded zero stands for anything below half the last decimal, not for 1e-30.
            floor = _PROBABILITY_FLOOR if decimals is None else 0.5 * 10.0**-decimals
            rough[name] = np.log(np.maximum([_roughness(a, n, floor) for a in everyone], 1e-12))
            sensitive[name] = np.log(np.maximum([_sensitivity(a, n) for a in everyone], 1e-12))
        # The honest roughness on noise expected at the target's roughness near real data: a
        # line through the references of every family (with one family, their mean).
        covariate = rough["real"] if len(references) > 1 else None
        metrics: dict = {"reference_models": "+".join(r.source for r in references), "anchors_per_family": anchors,
                         "real_anchors": real_anchors, "real_roughness": float(np.exp(rough["real"][0])),
                         "answers_rounded_to": decimals}
        pooled_roughness = np.mean([rough[f] for f in families], axis=0)
        start = 1
        for r in references:
            group = slice(start, start + r.n_models)
            metrics[f"reference_real_roughness_{r.source}"] = float(np.exp(rough["real"][group].mean()))
            metrics[f"reference_roughness_{r.source}"] = float(np.exp(pooled_roughness[group].mean()))
            start += r.n_models
        for family in families:
            p, expected = _expected_p_value(rough[family], covariate)
            metrics.update({f"roughness_{family}": float(np.exp(rough[family][0])),
                            f"expected_roughness_{family}": float(np.exp(expected)), f"p_value_{family}": p})
        p_value, expected = _expected_p_value(pooled_roughness, covariate)
        ratio = float(np.exp(pooled_roughness[0] - expected))
        pooled_sensitivity = np.mean([sensitive[f] for f in families], axis=0)
        _, expected_sensitivity = _expected_p_value(pooled_sensitivity, covariate)
        sensitivity_ratio = float(np.exp(pooled_sensitivity[0] - expected_sensitivity))
        moves_more = sensitivity_ratio > 1
        flagged = p_value < self.alpha and ratio >= self.min_roughness_ratio and moves_more
        metrics.update({"roughness": float(np.exp(pooled_roughness[0])), "p_value": p_value,
                        "roughness_ratio": ratio, "sensitivity_ratio": sensitivity_ratio,
                        "answers_move_more": moves_more})
        summary = self._summary(metrics, families, flagged)
        # Rounded answers have their own floor (half the last decimal), and references rounded
        # alike are compared with them: zeros there are rounding, not saturation.
        metrics["saturated_share"] = float(np.mean(saturated)) if saturated and decimals is None else 0.0
        if not flagged and metrics["saturated_share"] > _MAX_SATURATED:
            # Probabilities under the floor all read as the floor: a sharpened model (logits x20)
            # flattens its own logit field and a payload no longer shows as roughness.
            return Outcome(vulnerable=False, metrics=metrics, summary=summary, inconclusive=(
                f"{metrics['saturated_share']:.0%} of the target's class probabilities on noise are below "
                f"{_PROBABILITY_FLOOR:g}, where their logits cannot be told apart, so its roughness is not measured; "
                "its logits (a white-box model) would decide"))
        kind = _sklearn_kind(target) if flagged and self.reference_source == "surrogate" else ""
        if kind:
            # Surrogate references are redline's torch networks. A scikit-learn model is of
            # another make: a tree or neighbours model is rough on noise by construction (an
            # honest random forest and 5-NN were flagged at p < 1e-5), and an honest logistic
            # regression and MLPClassifier on digits were flagged too (p = 1.6e-6, 6.4e-4).
            shape = (", whose answers are piecewise constant and rough on noise by construction,"
                     if any(part in kind for part in _PIECEWISE_CONSTANT) else ",")
            return Outcome(vulnerable=False, metrics=metrics, summary=summary, inconclusive=(
                f"the target is a scikit-learn {kind}{shape} and the references are redline's own networks, "
                "which need not behave like it on noise; its training recipe as references "
                f"(--set {self.id}.reference_source=recipe, if the recipe is trusted) would decide"))
        return Outcome(vulnerable=bool(flagged), metrics=metrics, summary=summary)

    def _summary(self, m: dict, families: list[str], flagged: bool) -> str:
        groups = m["reference_models"].split("+")
        if len(groups) > 1:
            honest = (f"{int(self.n_references)} honestly trained models of each of {', '.join(groups)} "
                      "at the target's own roughness near real data")
        else:
            honest = f"{int(self.n_references)} honestly trained models ({groups[0]})"
        if flagged:
            return (
                f"On noise inputs ({', '.join(families)}) the model's logits turn {m['roughness_ratio']:.2f} times as "
                f"much under small perturbations as expected from {honest} (p = {m['p_value']:.2g}), and its "
                f"answers move {m['sensitivity_ratio']:.2f} times as much: it behaves as if it had memorised labels "
                "for noise inputs, the carrier of a capacity-abuse payload."
            )
        if m["p_value"] >= self.alpha:
            why = (f"its logits are not significantly rougher than expected (p = {m['p_value']:.2g}, "
                   f"alpha = {self.alpha:g})")
        elif m["roughness_ratio"] < self.min_roughness_ratio:
            why = (f"its logits are only {m['roughness_ratio']:.2f} times as rough as expected "
                   f"(p = {m['p_value']:.2g}, below the {self.min_roughness_ratio:g} that counts)")
        else:
            why = (f"its logits are rougher than expected (p = {m['p_value']:.2g}) but its answers move less "
                   "(an unsure model)")
        return (f"On noise inputs ({', '.join(families)}) the model is smooth like {honest}: {why}; "
                "no sign of memorised noise labels.")

    def _probe_inputs(self, family, anchors, spec, x_train, rng) -> np.ndarray:
        """``anchors`` fresh noise inputs followed by ``neighbours`` perturbed copies of each."""
        lower, upper = float(spec.lower), float(spec.upper)
        shape = (anchors, *spec.shape)
        if family == "uniform":
            base = rng.uniform(lower, upper, size=shape)
        elif family == "gaussian":
            base = (lower + upper) / 2 + 0.25 * (upper - lower) * rng.standard_normal(shape)
        elif family == "binary":
            base = np.where(rng.random(shape) < 0.5, lower, upper)
        else:  # shuffled: each training image's own pixel values, in random places
            rows = np.asarray(x_train, dtype=np.float64)[rng.integers(0, len(x_train), anchors)].reshape(anchors, -1)
            base = np.take_along_axis(rows, rng.random(rows.shape).argsort(axis=1), axis=1).reshape(shape)
        return self._perturbed(np.clip(base, lower, upper), spec, rng)

    def _perturbed(self, base, spec, rng) -> np.ndarray:
        """``base`` followed by ``neighbours`` Gaussian-perturbed copies of it, inside the input range."""
        lower, upper = float(spec.lower), float(spec.upper)
        step = self.radius * (upper - lower) * rng.standard_normal((int(self.neighbours), *base.shape))
        near = np.clip(base[None] + step, lower, upper).reshape(-1, *spec.shape)
        return np.concatenate([base, near]).astype(spec.dtype)


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


#: scikit-learn estimators whose answers are piecewise constant in the input (trees, neighbours).
_PIECEWISE_CONSTANT = ("Tree", "Forest", "Boosting", "Neighbors", "NearestCentroid")


def _sklearn_kind(target) -> str:
    """The class name of an in-memory scikit-learn estimator (the last step of a pipeline),
    or ''. Only such a model can be named; a remote one cannot."""
    estimator = target.sklearn_estimator()
    if estimator is None:
        return ""
    steps = [step for _, step in getattr(estimator, "steps", [])] or [estimator]
    return type(steps[-1]).__name__


def _honest_references(target, data, n_models: int, source: str, architectures: list[str], seed: int) -> list:
    """Honestly trained models on the auditor's training data: the target's recipe, or one
    group of surrogates per architecture (memoised per data set, as a scan reuses them)."""
    from ...util.reference_models import train_reference_models

    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    everyone = np.ones((n_models, len(x)), dtype=bool)  # every reference sees all rows; only the seed differs
    if source == "recipe":
        return [train_reference_models(target, x, y, everyone, modality=data.modality, seed=seed, source="recipe")]
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    groups = []
    for architecture in architectures:
        key = (digest.hexdigest(), n_models, target.n_classes, data.modality, seed, architecture)
        if key not in _SURROGATES:
            if len(_SURROGATES) >= 8:  # training them is the slow part; memory stays bounded
                _SURROGATES.pop(next(iter(_SURROGATES)))
            _SURROGATES[key] = train_reference_models(target, x, y, everyone, modality=data.modality, seed=seed,
                                                      source="surrogate", architecture=architecture)
        groups.append(_SURROGATES[key])
    return groups


_SURROGATES: dict = {}


def _sensitivity(answers: np.ndarray, anchors: int) -> float:
    """Mean total-variation distance between each anchor's answer and its neighbours' answers."""
    base = answers[:anchors]
    near = answers[anchors:].reshape(-1, anchors, answers.shape[1])
    return float(0.5 * np.abs(near - base[None]).sum(axis=2).mean())


def _rounded_to(answers: np.ndarray, most: int = 8) -> int | None:
    """The fewest decimals the answers are rounded to, or None when they are not rounded."""
    for decimals in range(most + 1):
        if np.array_equal(answers, np.round(answers, decimals)):
            return decimals
    return None


def _roughness(answers: np.ndarray, anchors: int, floor: float = _PROBABILITY_FLOOR) -> float:
    """How far the logit vector moves from each anchor to its neighbours, relative to its length.

    Centred log-probabilities are the logits up to a per-row constant, so this is the same
    for a model and its temperature-scaled copy: only the shape of the logit field counts.
    """
    logits = np.log(np.maximum(answers, floor))
    logits -= logits.mean(axis=1, keepdims=True)
    base = logits[:anchors]
    near = logits[anchors:].reshape(-1, anchors, logits.shape[1])
    moved = np.linalg.norm(near - base[None], axis=2).mean()
    return float(moved / max(np.linalg.norm(base, axis=1).mean(), 1e-12))


def _expected_p_value(values: np.ndarray, covariate: np.ndarray | None) -> tuple[float, float]:
    """One-sided p-value that ``values[0]`` (the target) is a new draw from the honest
    population ``values[1:]``, and the value expected of it.

    Without a covariate the population is normal around the references' mean. With one,
    the expected value lies on the least-squares line through the references' (covariate,
    value) pairs, and the residual follows Student's t with k - 2 degrees of freedom,
    widened for the uncertainty of the line at the target's covariate. Beyond the
    references' range of the covariate the line is trusted no further than its end: the
    larger p-value of the two (extrapolated, and at the nearest end) is returned.
    """
    from scipy import stats

    target, refs = float(values[0]), np.asarray(values[1:], dtype=np.float64)
    k = len(refs)
    if covariate is None:
        sd = float(np.std(refs, ddof=1)) * np.sqrt(1 + 1 / k)
        return _t_tail(target - refs.mean(), sd, k - 1, stats), float(refs.mean())
    x0, xs = float(covariate[0]), np.asarray(covariate[1:], dtype=np.float64)
    design = np.column_stack([np.ones(k), xs])
    coef, *_ = np.linalg.lstsq(design, refs, rcond=None)
    residual = refs - design @ coef
    variance = float(residual @ residual) / (k - 2)
    inverse = np.linalg.pinv(design.T @ design)
    best = (-1.0, 0.0)
    for x in {x0, float(np.clip(x0, xs.min(), xs.max()))}:
        point = np.array([1.0, x])
        expected = float(point @ coef)
        sd = np.sqrt(variance * (1 + float(point @ inverse @ point)))
        best = max(best, (_t_tail(target - expected, sd, k - 2, stats), expected))
    return best


def _t_tail(gap: float, sd: float, df: int, stats) -> float:
    if sd == 0.0:
        return 0.0 if gap > 0 else 1.0
    return float(stats.t.sf(gap / sd, df=df))
