"""FM08 malicious provider, black-box: labels memorised for noise inputs (capacity abuse, Song et al. 2017).

``FM08.capacity_abuse`` covers Song et al.'s black-box attack, where the parameters are
honest but the provider trained on extra noise inputs (regenerated from its secret seed)
whose labels spell out training images, and reads them back by querying. The probe does not
know the seed. A model that memorised arbitrary labels for noise has a label field in the
noise region that changes over short distances, so its answers there move more under a
small perturbation than an honest model's do:

1. **Probe.** For each noise family (uniform, Gaussian around mid-range, black-and-white,
   training images with their pixels shuffled) ``anchors`` fresh inputs and ``neighbours``
   perturbed copies of each (Gaussian, ``radius`` times the input range) are sent; the
   family's *sensitivity* is the mean total-variation distance between the answer at an
   anchor and at its neighbours (the flip rate, for a target that answers labels only).
2. **Reference.** ``n_references`` models trained honestly on the auditor's training data
   (the library's surrogate MLP/CNN, or the target's own recipe when the auditor trusts it)
   answer the same inputs, free of queries.
3. **Test.** One-sided prediction-interval t-tests ask whether the target's sensitivity is
   higher, and its mean top-two margin on the anchors lower, than another honest model's
   would be. A family counts only when both are (an intersection-union test: its p-value
   is the larger of the two). Merely unsure models, such as those trained with heavy noise,
   are less sure on noise but not more sensitive, and pass; memorised noise labels do both.
   The smallest family p-value times the number of families (Bonferroni) must fall below
   ``alpha``. A target that answers labels only has no margins: sensitivity alone decides.

Honest models of one recipe differ a lot on noise (the sensitivity of the zoo's honest
MLPs on uniform noise varies by about 18% from seed to seed), so the probe's power comes
from families where they agree (shuffled training pixels, black-and-white noise) and from
enough references. Limits: the references are honest models of one recipe, so an honest
target of a different recipe can sit outside their spread (a narrower MLP comes close on
digits); a labels-only target that is merely unsure flips more under perturbation and can
be flagged; carriers close to real data (augmented training images instead of noise) leave
the noise region untouched and evade the probe.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .base import Check, CheckContext, Needs, NotApplicable, Outcome

NOISE_FAMILIES = ("uniform", "gaussian", "binary", "shuffled")


class CapacityAbuseProbe(Check):
    id = "FM08.capacity_abuse"
    mode = "FM08"
    title = "Labels memorised for noise inputs (capacity-abuse exfiltration)"
    needs = Needs(modality=("image",))
    default_budget = len(NOISE_FAMILIES) * 512 * (1 + 4)

    def __init__(
        self,
        families: tuple[str, ...] = NOISE_FAMILIES,
        anchors: int = 512,
        neighbours: int = 4,
        radius: float = 0.1,
        n_references: int = 8,
        reference_source: str = "surrogate",
        alpha: float = 0.01,
    ):
        self.families = families
        self.anchors = anchors
        self.neighbours = neighbours
        self.radius = radius
        self.n_references = n_references
        self.reference_source = reference_source
        self.alpha = alpha

    def _validate(self) -> None:
        families = [self.families] if isinstance(self.families, str) else list(self.families)
        unknown = [f for f in families if f not in NOISE_FAMILIES]
        if not families or unknown:
            raise ValueError(f"families must be chosen from {', '.join(NOISE_FAMILIES)} (got {families})")
        if int(self.anchors) < 16 or int(self.neighbours) < 1:
            raise ValueError("anchors must be at least 16 and neighbours at least 1")
        if not 0 < self.radius <= 1:
            raise ValueError("radius must be in (0, 1], a fraction of the input range")
        if int(self.n_references) < 3:
            raise ValueError("n_references must be at least 3 (the test needs a spread of honest models)")
        if self.reference_source not in ("surrogate", "recipe"):
            raise ValueError("reference_source must be 'surrogate' or 'recipe'")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        families = list(dict.fromkeys([self.families] if isinstance(self.families, str) else self.families))
        per_anchor = 1 + int(self.neighbours)
        anchors = min(int(self.anchors), budget // (len(families) * per_anchor))
        if anchors < 16:
            raise NotApplicable(
                f"a budget of {budget} queries allows fewer than 16 anchors per noise family "
                f"(needs {16 * len(families) * per_anchor})"
            )
        labels_only = target.capabilities.outputs != "probabilities"
        spec = target.input_spec
        probes = {f: self._probe_inputs(f, anchors, spec, data.x_train, rng) for f in families}
        references = _honest_references(target, data, int(self.n_references), self.reference_source,
                                        int(rng.integers(2**31)))
        metrics: dict = {"reference_models": references.source, "labels_only": labels_only,
                         "anchors_per_family": anchors}
        p_values, excess = {}, {}
        for family, rows in probes.items():
            answers = _as_distributions(target.predict(rows), target.n_classes)
            ref_answers = references.predict_proba(rows)
            if labels_only:  # compare like with like: the references' labels as well
                ref_answers = np.stack([_as_distributions(r.argmax(axis=1), target.n_classes) for r in ref_answers])
            mine = _sensitivity(answers, anchors)
            theirs = np.array([_sensitivity(r, anchors) for r in ref_answers])
            p_sensitive = _prediction_p_value(mine, theirs)
            margin = _mean_margin(answers[:anchors])
            ref_margins = np.array([_mean_margin(r[:anchors]) for r in ref_answers])
            p_unsure = 0.0 if labels_only else _prediction_p_value(-margin, -ref_margins)
            p_values[family] = max(p_sensitive, p_unsure)
            excess[family] = mine / max(float(theirs.mean()), 1e-12)
            metrics[f"sensitivity_{family}"] = mine
            metrics[f"reference_sensitivity_{family}"] = float(theirs.mean())
            metrics[f"reference_sensitivity_sd_{family}"] = float(theirs.std(ddof=1))
            metrics[f"margin_{family}"] = margin
            metrics[f"reference_margin_{family}"] = float(ref_margins.mean())
            metrics[f"reference_margin_sd_{family}"] = float(ref_margins.std(ddof=1))
            metrics[f"p_value_{family}"] = p_values[family]
        worst = min(p_values, key=p_values.get)
        p_value = min(1.0, p_values[worst] * len(families))
        flagged = [f for f in families if p_values[f] * len(families) < self.alpha]
        metrics.update({
            "p_value": p_value,
            "most_significant_family": worst,
            "excess_ratio": excess[worst],
            "flagged_families": flagged,
        })
        if flagged:
            f = flagged[0]
            summary = (
                f"On {f} noise the model's answers move {excess[f]:.2f} times as much under small "
                f"perturbations as those of {int(self.n_references)} honestly trained models"
                + ("" if labels_only else ", with lower margins")
                + f" (Bonferroni p = {min(1.0, p_values[f] * len(families)):.2g}): it behaves as if it had "
                "memorised labels for noise inputs, the carrier of a capacity-abuse payload."
            )
        else:
            summary = (
                f"On noise inputs ({', '.join(families)}) the model is not both more perturbation-sensitive "
                f"and less sure than honestly trained models (smallest Bonferroni p = {p_value:.2g}); no "
                "sign of memorised noise labels."
            )
        return Outcome(vulnerable=bool(flagged), metrics=metrics, summary=summary)

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
        base = np.clip(base, lower, upper)
        step = self.radius * (upper - lower) * rng.standard_normal((int(self.neighbours), *shape))
        near = np.clip(base[None] + step, lower, upper).reshape(-1, *spec.shape)
        return np.concatenate([base, near]).astype(spec.dtype)


def _honest_references(target, data, n_models: int, source: str, seed: int):
    """Honestly trained models on the auditor's training data; surrogates are memoised per data set."""
    from ..util.reference_models import train_reference_models

    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    everyone = np.ones((n_models, len(x)), dtype=bool)  # every reference sees all rows; only the seed differs
    if source == "recipe":
        return train_reference_models(target, x, y, everyone, modality=data.modality, seed=seed, source="recipe")
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    key = (digest.hexdigest(), n_models, target.n_classes, data.modality, seed)
    if key not in _SURROGATES:
        if len(_SURROGATES) >= 4:  # training them is the slow part; a scan reuses them, memory stays bounded
            _SURROGATES.pop(next(iter(_SURROGATES)))
        _SURROGATES[key] = train_reference_models(target, x, y, everyone, modality=data.modality, seed=seed,
                                                  source="surrogate")
    return _SURROGATES[key]


_SURROGATES: dict = {}


def _as_distributions(answers: np.ndarray, n_classes: int) -> np.ndarray:
    """Probability rows as they are; labels as one-hot rows."""
    answers = np.asarray(answers)
    if answers.ndim == 2:
        return answers.astype(np.float64)
    return np.eye(n_classes)[answers.astype(np.int64)]


def _sensitivity(answers: np.ndarray, anchors: int) -> float:
    """Mean total-variation distance between each anchor's answer and its neighbours' answers."""
    base = answers[:anchors]
    near = answers[anchors:].reshape(-1, anchors, answers.shape[1])
    return float(0.5 * np.abs(near - base[None]).sum(axis=2).mean())


def _mean_margin(answers: np.ndarray) -> float:
    top = np.sort(answers, axis=1)
    return float((top[:, -1] - top[:, -2]).mean())


def _prediction_p_value(value: float, references: np.ndarray) -> float:
    """One-sided p-value that ``value`` is a new draw from the references' normal population.

    (value - mean) / (sd * sqrt(1 + 1/k)) follows Student's t with k - 1 degrees of freedom
    for a fresh draw, which accounts for estimating the mean and spread from few models.
    """
    from scipy import stats

    k = len(references)
    sd = float(np.std(references, ddof=1))
    gap = value - float(np.mean(references))
    if sd == 0.0:
        return 0.0 if gap > 0 else 1.0
    return float(stats.t.sf(gap / (sd * np.sqrt(1 + 1 / k)), df=k - 1))
