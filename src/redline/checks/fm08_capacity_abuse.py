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
   perturbed copies of each (Gaussian, ``radius`` times the input range) are sent.
2. **Statistics.** Per family, the *roughness* is the mean distance between the centred
   log-probabilities (logits up to a constant) at an anchor and at its neighbours, divided
   by their mean length at the anchors. Dividing by the length makes it blind to the
   logits' scale, so a model that is merely confident or merely unsure is not rough. The
   *sensitivity* is the mean total-variation distance between the answers at an anchor and
   its neighbours (the flip rate, for a target that answers labels only).
3. **Reference.** ``n_references`` models trained honestly on the auditor's training data
   (the library's surrogate MLP/CNN, or the target's own recipe when the auditor trusts it)
   answer the same inputs, free of queries.
4. **Test.** Each statistic is averaged over the families on a log scale, so one number
   pools the evidence of all families (they are correlated, which a single test on the
   pooled number accounts for, where Fisher's method would overstate the evidence and a
   Bonferroni correction would waste it). A
   one-sided prediction-interval t-test asks whether the target's pooled roughness is
   higher than another honest model's would be; ``p < alpha`` flags it, provided the
   effect is large enough to matter (pooled roughness at least ``min_roughness_ratio``
   times the references' geometric mean) and its answers also move more than the
   references' do on average (pooled sensitivity above their mean). The provisos only
   remove flags, so the false-positive rate stays at most ``alpha``; the first spares
   honest models of a nearby recipe that differ from the references by a few percent
   (a wider MLP), the second unsure models (such as the zoo's differentially private
   MLP) whose small logits turn easily but whose answers barely move. A target that answers labels
   only has no logits: the pooled flip rate is tested instead, with less power.

On builtin:digits (benchmarks/bench_fm08_capacity.py, probe seeds 0-9, 16 references) the
capacity-abuse model's pooled roughness is 1.6 to 2.0 times the references' (p below 3e-5)
for the zoo's model and for variants with other carrier seeds, Gaussian or black-and-white
carriers, half the payload or a wider net; honest MLPs of the same and of other recipes
(narrower, wider, tanh, weight decay, longer training) stay at 0.9 to 1.16. Limits: the
references are honest models of one recipe, so an honest target of a different family can
sit outside their spread (an honest CNN on digits is as rough as the malicious MLP and is
flagged against MLP references; use ``reference_source="recipe"`` for such targets); a
labels-only target that is merely unsure flips more under perturbation and can be flagged;
carriers close to real data (augmented training images instead of noise) leave the noise
region untouched and evade the probe.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .base import Check, CheckContext, Needs, NotApplicable, Outcome

NOISE_FAMILIES = ("uniform", "gaussian", "binary", "shuffled")
# Smallest probability taken into the log: float32 softmax reaches about 1e-38, and no
# honest digits model comes near 1e-30 on noise, so the floor only guards against log(0).
_PROBABILITY_FLOOR = 1e-30


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
        radius: float = 0.05,
        n_references: int = 16,
        reference_source: str = "surrogate",
        alpha: float = 0.01,
        min_roughness_ratio: float = 1.25,
    ):
        self.families = families
        self.anchors = anchors
        self.neighbours = neighbours
        self.radius = radius
        self.n_references = n_references
        self.reference_source = reference_source
        self.alpha = alpha
        self.min_roughness_ratio = min_roughness_ratio

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
        if not self.min_roughness_ratio >= 1:
            raise ValueError("min_roughness_ratio must be at least 1 (the target's roughness over the references')")

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
        # Per family and model (target first, then the references): log roughness, log sensitivity.
        rough, sensitive = [], []
        for family, rows in probes.items():
            answers = _as_distributions(target.predict(rows), target.n_classes)
            ref_answers = references.predict_proba(rows)
            if labels_only:  # compare like with like: the references' labels as well
                ref_answers = np.stack([_as_distributions(r.argmax(axis=1), target.n_classes) for r in ref_answers])
            everyone = [answers, *ref_answers]
            s = np.array([_sensitivity(a, anchors) for a in everyone])
            sensitive.append(np.log(np.maximum(s, 1e-12)))
            metrics[f"sensitivity_{family}"] = float(s[0])
            metrics[f"reference_sensitivity_{family}"] = float(s[1:].mean())
            metrics[f"reference_sensitivity_sd_{family}"] = float(s[1:].std(ddof=1))
            if not labels_only:
                r = np.array([_roughness(a, anchors) for a in everyone])
                rough.append(np.log(np.maximum(r, 1e-12)))
                metrics[f"roughness_{family}"] = float(r[0])
                metrics[f"reference_roughness_{family}"] = float(r[1:].mean())
                metrics[f"reference_roughness_sd_{family}"] = float(r[1:].std(ddof=1))
                metrics[f"p_value_{family}"] = _prediction_p_value(rough[-1][0], rough[-1][1:])
        pooled_sensitivity = np.mean(sensitive, axis=0)
        p_sensitive = _prediction_p_value(pooled_sensitivity[0], pooled_sensitivity[1:])
        moves_more = bool(pooled_sensitivity[0] > pooled_sensitivity[1:].mean())
        sensitivity_ratio = float(np.exp(pooled_sensitivity[0] - pooled_sensitivity[1:].mean()))
        metrics.update({"p_value_sensitivity": p_sensitive, "sensitivity_ratio": sensitivity_ratio})
        if labels_only:
            p_value, flagged = p_sensitive, p_sensitive < self.alpha
        else:
            pooled_roughness = np.mean(rough, axis=0)
            p_value = _prediction_p_value(pooled_roughness[0], pooled_roughness[1:])
            ratio = float(np.exp(pooled_roughness[0] - pooled_roughness[1:].mean()))
            flagged = p_value < self.alpha and ratio >= self.min_roughness_ratio and moves_more
            metrics["roughness_ratio"] = ratio
        metrics.update({"p_value": p_value, "answers_move_more": moves_more})
        return Outcome(vulnerable=bool(flagged), metrics=metrics,
                       summary=self._summary(metrics, families, labels_only, flagged))

    def _summary(self, m: dict, families: list[str], labels_only: bool, flagged: bool) -> str:
        k = int(self.n_references)
        if labels_only:
            verdict = "it behaves as if it" if flagged else "no sign that it"
            return (
                f"On noise inputs ({', '.join(families)}) the model's labels flip {m['sensitivity_ratio']:.2f} times "
                f"as often under small perturbations as those of {k} honestly trained models (p = {m['p_value']:.2g}); "
                f"{verdict} memorised labels for noise inputs, the carrier of a capacity-abuse payload."
            )
        if flagged:
            return (
                f"On noise inputs ({', '.join(families)}) the model's logits turn {m['roughness_ratio']:.2f} times as "
                f"much under small perturbations as those of {k} honestly trained models (p = {m['p_value']:.2g}), and "
                f"its answers move {m['sensitivity_ratio']:.2f} times as much: it behaves as if it had memorised labels "
                "for noise inputs, the carrier of a capacity-abuse payload."
            )
        if m["p_value"] >= self.alpha:
            why = f"its logits are no rougher (p = {m['p_value']:.2g})"
        elif m["roughness_ratio"] < self.min_roughness_ratio:
            why = (f"its logits are only {m['roughness_ratio']:.2f} times as rough (p = {m['p_value']:.2g}, "
                   f"below the {self.min_roughness_ratio:g} that counts)")
        else:
            why = f"its logits are rougher (p = {m['p_value']:.2g}) but its answers move less than theirs (an unsure model)"

        return (
            f"On noise inputs ({', '.join(families)}) the model is smooth like {k} honestly trained models: {why}; "
            "no sign of memorised noise labels."
        )

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


def _roughness(answers: np.ndarray, anchors: int) -> float:
    """How far the logit vector moves from each anchor to its neighbours, relative to its length.

    Centred log-probabilities are the logits up to a per-row constant, so this is the same
    for a model and its temperature-scaled copy: only the shape of the logit field counts.
    """
    logits = np.log(np.maximum(answers, _PROBABILITY_FLOOR))
    logits -= logits.mean(axis=1, keepdims=True)
    base = logits[:anchors]
    near = logits[anchors:].reshape(-1, anchors, logits.shape[1])
    moved = np.linalg.norm(near - base[None], axis=2).mean()
    return float(moved / max(np.linalg.norm(base, axis=1).mean(), 1e-12))


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
