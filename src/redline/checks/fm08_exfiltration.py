"""FM08 malicious ML provider: training data hidden in the delivered parameters (Song et al. 2017).

A provider who controls the training code can make the model it delivers carry its
training data while keeping its accuracy: in the low bits of the floats (LSB encoding), in
parameter values that correlate with the pixels (correlated-value encoding), or in the
parameters' signs (sign encoding). ``FM08.exfiltration`` inspects the parameters of a
white-box target (a PyTorch module, a scikit-learn estimator or the initializers of an ONNX
file), without a single query:

1. **Recovery.** Each encoding's decoder (:mod:`redline.util.exfiltration`) reads the flat
   parameter vector as consecutive image-sized chunks; a chunk that correlates with one of
   the auditor's training images at ``match_correlation`` or more is a recovered image.
   Honest parameters match nothing at that level, so recovered images are proof, scored
   with SSIM and mean absolute pixel error against the originals.
2. **Statistics without the data.** The low bits of honestly trained floats are noise with
   no serial dependence, while a pixel payload makes neighbouring low bits alike; a lag-1
   autocorrelation test on the low byte (``lsb_p_value``) catches that even when the
   payload is laid out where the decoder does not look. Entropy of the low byte and
   sign-pattern statistics (share of positive parameters, serial correlation of signs) are
   reported as context: honest training leaves some structure in signs, so they do not
   decide the verdict.

Limits: the decoders assume the payload starts at the beginning of the parameter vector
and is stored image by image; an encrypted LSB payload is indistinguishable from noise.
Rounding away the low mantissa bits of a delivered model removes the LSB channel.

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

from ..util import exfiltration as ex
from ..util.evidence import save_arrays, try_plot
from ..util.model_parameters import parameter_arrays
from ..util.ssim import ssim
from .base import Check, CheckContext, Needs, NotApplicable, Outcome


class ParameterExfiltration(Check):
    id = "FM08.exfiltration"
    mode = "FM08"
    title = "Training data encoded in the delivered model's parameters"
    needs = Needs(modality=("image",))
    default_budget = 0  # reads parameters; sends no queries

    def __init__(
        self,
        match_correlation: float = 0.8,
        min_recovered_images: int = 3,
        lsb_bits: tuple[int, ...] = (4, 8, 16),
        alpha: float = 1e-3,
        min_serial_correlation: float = 0.05,
        max_references: int = 5000,
        max_chunks: int = 20000,
    ):
        self.match_correlation = match_correlation
        self.min_recovered_images = min_recovered_images
        self.lsb_bits = lsb_bits
        self.alpha = alpha
        self.min_serial_correlation = min_serial_correlation
        self.max_references = max_references
        self.max_chunks = max_chunks

    def _validate(self) -> None:
        if not 0 < self.match_correlation < 1:
            raise ValueError("match_correlation must be in (0, 1)")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if int(self.min_recovered_images) < 1 or int(self.max_references) < 1 or int(self.max_chunks) < 1:
            raise ValueError("min_recovered_images, max_references and max_chunks must be at least 1")
        if not self.lsb_bits or any(not 1 <= int(b) <= 16 for b in self.lsb_bits):
            raise ValueError("lsb_bits must list bit widths between 1 and 16")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        arrays = parameter_arrays(target)
        if not arrays:
            raise NotApplicable(
                "the check reads the model's parameters and the target exposes none "
                "(an in-memory PyTorch module, a scikit-learn estimator or an ONNX file is needed)"
            )
        image_shape = tuple(int(s) for s in data.x_train.shape[1:])
        chunk = int(np.prod(image_shape))
        params = np.concatenate([a.astype(np.float64) for a in arrays])[: int(self.max_chunks) * chunk]
        if params.size < chunk:
            raise NotApplicable(f"the model has {params.size} parameters, fewer than one image ({chunk} values)")
        arrays = _truncate(arrays, params.size)
        pick = rng.permutation(len(data.x_train))[: int(self.max_references)]
        references = np.asarray(data.x_train[np.sort(pick)], dtype=np.float64)

        recoveries = {name: self._recover(cands, refs, references)
                      for name, cands, refs in self._decoded(arrays, params, image_shape, references)}
        stats = parameter_statistics(arrays)
        flagged = sorted({name.split(":")[0] for name, r in recoveries.items()
                          if r["images"] >= int(self.min_recovered_images)})
        if (stats["lsb_p_value"] < self.alpha and stats["lsb_serial_correlation"] >= self.min_serial_correlation
                and "lsb" not in flagged):
            flagged.append("lsb")
        best_name = max(recoveries, key=lambda n: (recoveries[n]["images"], recoveries[n]["ssim"] or 0.0))
        best = recoveries[best_name]
        metrics = {
            "parameters": int(params.size),
            **stats,
            "correlation_score": recoveries["correlation"]["median_correlation"],
            "recovered_images": int(best["images"]),
            "recovered_fraction": best["images"] / len(references),
            "recovered_ssim": best["ssim"],
            "recovered_mae": best["mae"],
            "recovered_by": best_name if best["images"] else None,
            **{f"recovered_images_{n.replace(':', '_')}": int(r["images"]) for n, r in recoveries.items()},
            "flagged_encodings": flagged,
        }
        evidence = self._evidence(ctx, best, references)
        if flagged:
            summary = (
                f"The parameters carry training data ({', '.join(flagged)} encoding). "
                f"{best['images']} distinct training images were read back from them"
                + (f" with mean SSIM {best['ssim']:.2f}." if best["images"] else ".")
            )
        else:
            summary = (
                f"No training image could be read back from the {params.size} parameters by LSB, "
                "correlated-value or sign decoding, and their low bits show no serial structure."
            )
        return Outcome(vulnerable=bool(flagged), metrics=metrics, evidence=evidence, summary=summary)

    def _decoded(self, arrays, params, image_shape, references):
        """(decoder name, candidate images, what to match them against) for every decoder."""
        for bits in self.lsb_bits:
            yield f"lsb:{int(bits)}", ex.as_images(low_bits(arrays, int(bits)), image_shape), references
        yield "correlation", ex.rescale_chunks(ex.as_images(params, image_shape)), references
        binary = (references > ex.SIGN_THRESHOLD).astype(np.float64)
        yield "sign", ex.as_images(ex.sign_extract(params), image_shape), binary

    def _recover(self, candidates, match_against, originals) -> dict:
        index, corr = ex.best_matches(candidates, match_against)
        hit = np.abs(corr) >= self.match_correlation
        # An inverted copy (parameters anti-correlated with the pixels) is flipped back.
        recovered = np.where((corr < 0).reshape(-1, *[1] * (candidates.ndim - 1)), 1.0 - candidates, candidates)[hit]
        # One image may be stored twice; score each recovered training image once.
        _, first = np.unique(index[hit], return_index=True)
        recovered, matched = recovered[first], index[hit][first]
        truth = originals[matched]
        image_like = truth.ndim >= 3 and min(truth.shape[-2:]) >= 3
        return {
            "images": len(matched),
            "ssim": float(ssim(recovered, truth).mean()) if len(matched) and image_like else None,
            "mae": float(np.abs(recovered - truth).mean()) if len(matched) else None,
            "median_correlation": float(np.median(np.abs(corr))),
            "recovered": recovered,
            "index": matched,
        }

    def _evidence(self, ctx, best, references) -> dict:
        evidence: dict = {}
        if not best["images"]:
            return evidence
        rel = save_arrays(ctx, f"{self.id}-recovered.npz", recovered=best["recovered"], train_index=best["index"])
        if rel:
            evidence["examples"] = rel
        from ..report import plots

        show = slice(0, 8)
        rel = try_plot(ctx, f"{self.id}-recovered.png", plots.image_grid,
                       [list(best["recovered"][show]), list(references[best["index"][show]])],
                       row_titles=["weights", "training"])
        if rel:
            evidence["plots"] = [rel]
        return evidence


def parameter_vector(target) -> np.ndarray | None:
    """All float parameters as one float64 vector, or None when the target exposes none."""
    arrays = parameter_arrays(target)
    return np.concatenate([a.astype(np.float64) for a in arrays]) if arrays else None


def low_bits(arrays: list[np.ndarray], bits: int) -> np.ndarray:
    """The low ``bits`` bits of every parameter, read in each array's own float format."""
    return np.concatenate([ex.lsb_extract(a, bits) for a in arrays])


def parameter_statistics(arrays: list[np.ndarray]) -> dict:
    """Data-free statistics of the low byte and the signs of the parameters."""
    from scipy import stats

    low = low_bits(arrays, 8) * 255.0
    params = np.concatenate([a.astype(np.float64) for a in arrays])
    n = params.size
    counts = np.bincount(np.rint(low).astype(np.int64), minlength=256)
    freq = counts[counts > 0] / n
    lsb_r = _lag1(low)
    signs = ex.sign_extract(params)
    positive = int(signs.sum())
    return {
        "lsb_entropy": float(-(freq * np.log2(freq)).sum()),
        "lsb_serial_correlation": lsb_r,
        # Under independence, r * sqrt(n) is about standard normal; one-sided (payloads make neighbours alike).
        "lsb_p_value": float(stats.norm.sf(lsb_r * np.sqrt(n))),
        "sign_positive_fraction": positive / n,
        "sign_bias_p_value": float(stats.binomtest(positive, n, 0.5).pvalue),
        "sign_serial_correlation": _lag1(signs),
    }


def _truncate(arrays: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The leading ``size`` values of the concatenated arrays, still split by array."""
    out, left = [], size
    for a in arrays:
        if left <= 0:
            break
        out.append(a[:left])
        left -= len(a[:left])
    return out


def _lag1(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64) - np.mean(values)
    denom = float(v @ v)
    return float(v[1:] @ v[:-1] / denom) if denom > 0 else 0.0


# -- FM08.capacity_abuse -------------------------------------------------------------------

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
