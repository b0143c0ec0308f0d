"""FM08 malicious ML provider: training data hidden in the delivered parameters (Song et al. 2017).

A provider who controls the training code can make the model it delivers carry its
training data while keeping its accuracy: in the low bits of the floats (LSB encoding), in
parameter values that correlate with the pixels (correlated-value encoding), or in the
parameters' signs (sign encoding). ``FM08.exfiltration`` inspects the parameters of a
white-box target (a PyTorch module, a scikit-learn estimator or the initializers of an ONNX
file), without a single query (``FM08.capacity_abuse``, in its own module, covers the
black-box variant):

1. **Recovery.** Each encoding's decoder (:mod:`redline.util.exfiltration`) reads the flat
   parameter vector as consecutive image-sized chunks; a chunk that correlates with one of
   the auditor's training images at ``match_correlation`` or more, and is mostly that one
   image rather than a blend of several, is a recovered image, scored with SSIM and mean
   absolute pixel error against the originals. Chance matches are counted too: the same
   chunks with their pixels shuffled go through the same matching, and recoveries prove a
   payload only when they are too many for that count (one-sided Poisson test at
   ``alpha``). On 8x8 digits honest chunks match nothing; on 4x4 images (16 pixels) an
   honest network's chunks matched dozens of training images by chance.
   Every decoder reads the parameters in two layouts: as stored (each weight matrix row by
   row, PyTorch's order) and with each weight matrix read column by column (decoders named
   ``...:columns``). Which layout a payload uses is the provider's choice: 256 MNIST images
   written into the low byte of a first layer's transpose (one image after another down
   its columns) read back from no row-major chunk, and the old check passed that model
   (low-byte serial correlation 0.031 in row order, 0.80 column by column). A matrix's
   shape comes from the PyTorch module or the scikit-learn estimator; the flat
   initializers of an ONNX file are taken as matrices with one row per value of the array
   that follows (a layer's bias follows its weight), so a layer without a bias is read by
   rows only.
2. **Statistics without the data.** The low bits of honestly trained floats are noise with
   no serial dependence, while a pixel payload makes neighbouring low bits alike; a lag-1
   autocorrelation test on the low byte, in both layouts (``lsb_p_value`` as stored,
   ``lsb_p_value_columns`` column by column; ``alpha`` shared between them), catches that
   even when the payload is laid out where the decoders do not look. It is not proof:
   weights rounded to a grid (quantisation-aware training, dequantised exports) share low
   bits by value, and an honest network fake-quantised to 4 bits gave p = 1e-198. A
   significant serial test with no image read back is therefore ``inconclusive``, naming
   the payload it suggests, whatever the size of the correlation (below
   ``min_serial_correlation`` the summary calls it weak). Entropy of the low byte and
   sign-pattern statistics (share of positive parameters, serial correlation of signs)
   are reported as context: honest training leaves some structure in signs, and a
   half-precision model exported as float32 has an all-zero low byte, so they do not
   decide the verdict. On 20 honest networks (MNIST and digits CNNs and MLPs trained
   outside the zoo, the zoo's two honest digits MLPs) the smaller p of the two layouts was
   0.012 at least, and every verdict ``not_vulnerable``.

Limits: the decoders assume the payload starts at the beginning of the parameter vector
(in one of the two layouts) and is stored image by image; an encrypted LSB payload is
indistinguishable from noise. Rounding away the low mantissa bits of a delivered model
removes the LSB channel.
"""
from __future__ import annotations

import numpy as np

from ...util import exfiltration as ex
from ...util.evidence import save_arrays, try_plot
from ...util.ssim import ssim
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome


class ParameterExfiltration(Check):
    id = "FM08.exfiltration"
    mode = "FM08"
    title = "Training data encoded in the delivered model's parameters"
    needs = Needs(modality=("image",), roles=("train",), labels=False)  # images to recognise
    default_budget = 0  # reads parameters; sends no queries
    metrics = (
        "correlation_score", "flagged_encodings", "lsb_entropy", "lsb_p_value", "lsb_p_value_columns",
        "lsb_serial_correlation", "lsb_serial_correlation_columns", "matrices_read_by_columns", "parameters",
        "recovered_by", "recovered_fraction",
        "chance_matches", "recovered_images", "recovered_images_*", "recovered_mae", "recovered_ssim",
        "sign_bias_p_value", "sign_positive_fraction", "sign_serial_correlation", "stored_training_data"
    )
    param_docs = {
        "match_correlation": "correlation with a training image that counts as recovering it, in (0, 1)",
        "min_recovered_images": "recovered images needed to call the model an exfiltration channel",
        "lsb_bits": "low-order bit widths searched for hidden images (each 1 to 16)",
        "alpha": "significance level of the bit-statistics test and of recoveries against chance matches",
        "min_serial_correlation": "serial correlation of low-order bits below which a significant test is called weak "
                                  "(still inconclusive)",
        "max_references": "training images compared with what the parameters decode to",
        "max_chunks": "parameter chunks (one image each) decoded at most",
    }

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
        arrays = target.parameter_arrays()
        stored = _stored_training_data(target)
        if not arrays and stored:
            raise NotApplicable(
                f"the model's fitted values are summaries or copies of its training data by design "
                f"({', '.join(sorted(stored))}: {sum(stored.values())} values), so anyone holding the file can "
                "read that data; the check looks for data a provider hid in trained weights, and this model has none"
            )
        if not arrays and target.sklearn_estimator() is not None:
            kind = type(target.sklearn_estimator()).__name__
            raise NotApplicable(
                f"the scikit-learn {kind} has no fitted float weights to read (trees keep split thresholds in "
                "objects, neighbours models the training rows themselves, which anyone holding the file can read)")
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
        # The same parameters with every weight matrix read column by column (see the docstring).
        columns = _matrix_columns(target, arrays)
        layouts = {"": _truncate(arrays, params.size)}
        if any(columns):
            layouts["columns"] = _truncate(_read_by_columns(arrays, columns), params.size)
        arrays = layouts[""]
        pick = rng.permutation(len(data.x_train))[: int(self.max_references)]
        references = np.asarray(data.x_train[np.sort(pick)], dtype=np.float64)

        shuffle = np.random.default_rng(0)
        recoveries, chance = {}, {}
        for layout, layout_arrays in layouts.items():
            layout_params = np.concatenate([a.astype(np.float64) for a in layout_arrays])
            for name, cands, refs in self._decoded(layout_arrays, layout_params, image_shape, references):
                name = f"{name}:{layout}" if layout else name
                recoveries[name] = self._recover(cands, refs, references)
                # The same chunks, pixels shuffled within each: what matches by chance alone.
                flat = cands.reshape(len(cands), -1)
                shuffled = np.take_along_axis(flat, shuffle.random(flat.shape).argsort(axis=1), axis=1)
                chance[name] = self._recover(shuffled.reshape(cands.shape), refs, references)["images"]
        stats = parameter_statistics(arrays)
        by_columns = parameter_statistics(layouts["columns"]) if "columns" in layouts else None
        stats["lsb_serial_correlation_columns"] = by_columns["lsb_serial_correlation"] if by_columns else None
        stats["lsb_p_value_columns"] = by_columns["lsb_p_value"] if by_columns else None
        flagged = sorted({name.split(":")[0] for name, r in recoveries.items()
                          if r["images"] >= int(self.min_recovered_images)
                          and _beyond_chance(r["images"], chance[name], float(self.alpha))})
        # The serial test in each layout, at alpha shared between them: whichever is significant
        # suggests a payload, however small its correlation (see the docstring).
        serial_tests = {"": (stats["lsb_serial_correlation"], stats["lsb_p_value"])}
        if by_columns:
            serial_tests["columns"] = (by_columns["lsb_serial_correlation"], by_columns["lsb_p_value"])
        significant = {layout: rp for layout, rp in serial_tests.items() if rp[1] < self.alpha / len(serial_tests)}
        serial = bool(significant) and "lsb" not in flagged
        proven = [n for n in recoveries if n.split(":")[0] in flagged] or list(recoveries)
        best_name = max(proven, key=lambda n: (recoveries[n]["images"], recoveries[n]["ssim"] or 0.0))
        best = recoveries[best_name] if flagged else {**recoveries[best_name], "images": 0, "ssim": None, "mae": None}
        metrics = {
            "parameters": int(params.size),
            **stats,
            "matrices_read_by_columns": int(sum(1 for c in columns if c)),
            "correlation_score": recoveries["correlation"]["median_correlation"],
            "recovered_images": int(best["images"]),
            "recovered_fraction": best["images"] / len(references),
            "recovered_ssim": best["ssim"],
            "recovered_mae": best["mae"],
            "recovered_by": best_name if best["images"] else None,
            **{f"recovered_images_{n.replace(':', '_')}": int(r["images"]) for n, r in recoveries.items()},
            "flagged_encodings": flagged,
            "chance_matches": {n.replace(':', '_'): int(c) for n, c in chance.items()},
            "stored_training_data": stored,
        }
        evidence = self._evidence(ctx, best, references)
        undecided = ""
        if flagged:
            summary = (
                f"The parameters carry training data ({', '.join(flagged)} encoding"
                + (", weight matrices read column by column" if best_name.endswith(":columns") else "") + "). "
                f"{best['images']} distinct training images were read back from them"
                + (f" with mean SSIM {best['ssim']:.2f}" if best["ssim"] is not None else "")
                + f" (by chance, with their pixels shuffled: {chance[best_name]})."
            )
        elif serial:  # the low-bit statistics alone: a payload suggested, not shown
            layout = min(significant, key=lambda k: significant[k][1])
            r, p = significant[layout]
            where = " with each weight matrix read column by column" if layout else ""
            strength = "" if r >= self.min_serial_correlation else "weakly but significantly "
            summary = (
                f"The parameters' low bits are {strength}serially correlated{where} (r = {r:.3f}, p = {p:.2g}; "
                f"low-byte entropy {stats['lsb_entropy']:.2f} bits of 8) as an LSB payload makes them, though no "
                "training image was read back from them."
            )
            undecided = ("serially correlated low bits suggest an LSB payload (perhaps encrypted, or laid out where "
                         "the decoders do not look), but weights rounded to a grid (quantised training or export) "
                         "share low bits too, and no training image was read back to prove it")
        else:
            summary = (
                f"No training image could be read back from the {params.size} parameters by LSB, "
                "correlated-value or sign decoding"
                + (" (weight matrices read by rows and by columns)" if "columns" in layouts else "")
                + ", and their low bits show no serial structure (lowest p = "
                f"{min(rp[1] for rp in serial_tests.values()):.2g})."
            )
        if stored:
            summary += (f" Apart from its weights the model stores summaries or copies of its training data by design "
                        f"({', '.join(sorted(stored))}), which were not searched and which anyone holding the file can read.")
        return Outcome(vulnerable=bool(flagged), metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _decoded(self, arrays, params, image_shape, references):
        """(decoder name, candidate images, what to match them against) for every decoder."""
        for bits in self.lsb_bits:
            yield f"lsb:{int(bits)}", ex.as_images(low_bits(arrays, int(bits)), image_shape), references
        yield "correlation", ex.rescale_chunks(ex.as_images(params, image_shape)), references
        binary = (references > ex.SIGN_THRESHOLD).astype(np.float64)
        yield "sign", ex.as_images(ex.sign_extract(_signed_only(arrays, params)), image_shape), binary

    def _recover(self, candidates, match_against, originals) -> dict:
        index, corr = ex.best_matches(candidates, match_against)
        hit = np.abs(corr) >= self.match_correlation
        # A chunk that is a blend of many training images (a class template, the mean of a
        # cluster) correlates with each of them; only one that is mostly a single image is a copy.
        hit[hit] = _single_image_shares(candidates[hit], corr[hit], match_against) > 0.5
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
        from ...util import plots

        show = slice(0, 8)
        rel = try_plot(ctx, f"{self.id}-recovered.png", plots.image_grid,
                       [list(best["recovered"][show]), list(references[best["index"][show]])],
                       row_titles=["weights", "training"])
        if rel:
            evidence["plots"] = [rel]
        return evidence


def parameter_vector(target) -> np.ndarray | None:
    """All float parameters as one float64 vector, or None when the target exposes none."""
    arrays = target.parameter_arrays()
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
    # The serial test reads distinct neighbours only: runs of exact zeros (a pruned layer) or
    # of one repeated value share their low bits, and such runs alone once flagged honest
    # models (p = 0.0, r = 0.59) as carrying a payload. A payload sits in ordinary weights.
    distinct = (params != 0) & np.r_[True, params[1:] != params[:-1]]
    kept = int(distinct.sum())
    lsb_r = _lag1(low[distinct]) if kept > 2 else 0.0
    signs = ex.sign_extract(params)
    positive = int(signs.sum())
    return {
        "lsb_entropy": float(-(freq * np.log2(freq)).sum()),
        "lsb_serial_correlation": lsb_r,
        # Under independence, r * sqrt(n) is about standard normal; one-sided (payloads make neighbours alike).
        "lsb_p_value": float(stats.norm.sf(lsb_r * np.sqrt(max(kept, 1)))),
        "sign_positive_fraction": positive / n,
        "sign_bias_p_value": float(stats.binomtest(positive, n, 0.5).pvalue),
        "sign_serial_correlation": _lag1(signs),
    }


def _beyond_chance(found: int, by_chance: int, alpha: float) -> bool:
    """Whether ``found`` recoveries are too many for chance, which matched ``by_chance`` of
    the shuffled chunks: a one-sided Poisson test at ``alpha``, the chance rate at least 0.1
    (one shuffle measures it; an unseen rate is not a zero one)."""
    from scipy.stats import poisson

    return bool(poisson.sf(found - 1, max(float(by_chance), 0.1)) < alpha)


def _stored_training_data(target) -> dict[str, int]:
    from ...targets.parameters import sklearn_data_summaries

    estimator = target.sklearn_estimator()
    return sklearn_data_summaries(estimator) if estimator is not None else {}


def _signed_only(arrays: list[np.ndarray], params: np.ndarray) -> np.ndarray:
    """The parameters with arrays that hold no negative value masked to 0 (bit 0): such an
    array (variances, counts, ReLU-fed scales) carries no sign chosen by anyone, and its
    zero/non-zero pattern once passed for a sign-encoded image."""
    out, start = params.copy(), 0
    for a in arrays:
        end = min(start + a.size, out.size)
        if not (a[: end - start] < 0).any():
            out[start:end] = 0.0
        start = end
    return out


def _single_image_shares(candidates: np.ndarray, corr: np.ndarray, references: np.ndarray, k: int = 20) -> np.ndarray:
    """For each candidate, the share of its best non-negative fit on its ``k`` most correlated
    references (plus an offset) that falls on the single largest one: near 1 for a copy of
    one image, low for a blend of several (a class mean correlates with all its members).
    Measured on digits: copies by LSB and sign encodings 0.74-1.0, noisy correlated-value
    copies median 0.65, class means of naive Bayes and nearest centroid 0.13-0.44."""
    from scipy.optimize import nnls

    if not len(candidates):
        return np.zeros(0)
    flat_refs = references.reshape(len(references), -1).astype(np.float64)
    k = min(int(k), len(flat_refs))
    centred = flat_refs - flat_refs.mean(axis=1, keepdims=True)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    shares = np.empty(len(candidates))
    for i, cand in enumerate(candidates.reshape(len(candidates), -1).astype(np.float64)):
        if corr[i] < 0:  # an inverted copy is fitted as its inverse
            cand = 1.0 - cand
        c = cand - cand.mean()
        top = np.argsort(-np.abs(centred @ (c / max(np.linalg.norm(c), 1e-12))))[:k]
        design = np.column_stack([flat_refs[top].T, np.ones(cand.size), -np.ones(cand.size)])
        w = nnls(design, cand)[0][:k]
        shares[i] = w.max() / w.sum() if w.sum() > 0 else 0.0
    return shares


def _matrix_columns(target, arrays: list[np.ndarray]) -> list[int]:
    """Per parameter array, how many columns the weight matrix it was flattened from has
    (its size over its first dimension; 0 for vectors and where the shape is unknown).

    Shapes come from the PyTorch module or the scikit-learn estimator. Flat arrays without
    them (ONNX initializers) are taken as matrices with one row per value of the array that
    follows, as a layer's bias follows its weight in an exported graph.
    """
    shapes = _parameter_shapes(target)
    if shapes is not None and [int(np.prod(s)) for s in shapes] == [a.size for a in arrays]:
        return [int(np.prod(s[1:])) if len(s) >= 2 and s[0] > 1 and np.prod(s[1:]) > 1 else 0 for s in shapes]
    sizes = [a.size for a in arrays] + [0]
    return [n // rows if 2 <= rows < n and n % rows == 0 else 0 for n, rows in zip(sizes, sizes[1:])]


def _parameter_shapes(target) -> list[tuple[int, ...]] | None:
    """The shapes of :meth:`Target.parameter_arrays`, in its order, where the target knows them."""
    module = target.torch_module()
    if module is not None:
        return [tuple(p.shape) for p in module.parameters() if p.is_floating_point()]
    estimator = target.sklearn_estimator()
    if estimator is None:
        return None
    from ...targets.parameters import SKLEARN_DATA_SUMMARIES

    # The walk of targets.parameters.sklearn_parameter_arrays, keeping shapes.
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    shapes = []
    for name in sorted(vars(estimator)):
        if not name.endswith("_") or name.startswith("_") or name in SKLEARN_DATA_SUMMARIES:
            continue
        value = getattr(estimator, name)
        shapes += [item.shape for item in (value if isinstance(value, list) else [value])
                   if isinstance(item, np.ndarray) and item.dtype.kind == "f"]
    return shapes


def _read_by_columns(arrays: list[np.ndarray], columns: list[int]) -> list[np.ndarray]:
    """The arrays with each matrix (``columns`` > 0) read column by column, flat again."""
    return [a.reshape(-1, c).T.reshape(-1) if c else a for a, c in zip(arrays, columns)]


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
