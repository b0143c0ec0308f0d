"""FM10 detectors against ART's poison detectors and STRIP, on the zoo's backdoored MNIST CNN, in one run.

Same model (zoo:mnist_cnn_backdoor), same poisoned training set (5% BadNets patch to class
0, ground truth in ``meta["poisoned_indices"]``), same clean twin (zoo:mnist_cnn_clean).

* activation clustering: redline ``FM10.activation_clustering`` vs ART ``ActivationDefence``
  (2 clusters, 10 PCA dimensions, "smaller cluster" analysis; its relative-size analysis fails on numpy 2), precision / recall of flagged rows;
* spectral signatures: redline ``FM10.spectral_signatures`` vs ART ``SpectralSignatureDefense``
  (same expected poison share), precision / recall;
* STRIP: redline ``FM10.strip`` vs ART ``STRIP`` (same number of overlays and false-rejection
  target), false-rejection rate on clean inputs and detection rate on triggered inputs;
* trigger reverse-engineering (redline only; ART 1.20 ships Neural Cleanse only as a
  Keras-specific defence): anomaly index on both controls.

Prints each measurement, wall time, and redline/ART ratios (machines are noisy: ratios).

    python benchmarks/bench_fm10_backdoor.py [--strip-inputs 200] [--nc-steps 300]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def pr(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((flagged & truth).sum())
    return (hits / max(int(flagged.sum()), 1), hits / max(int(truth.sum()), 1))


def art_classifier(target, probabilities=False):
    """ART's wrapper of the target's module; ``probabilities`` adds a softmax head (ART's STRIP
    takes the entropy of what the classifier answers, so it needs probabilities, not logits)."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    module = torch.nn.Sequential(target.module, torch.nn.Softmax(dim=1)) if probabilities else target.module
    return PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=target.input_spec.shape,
                             nb_classes=target.n_classes, clip_values=(0.0, 1.0))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strip-inputs", type=int, default=200)
    ap.add_argument("--overlays", type=int, default=20)
    ap.add_argument("--frr", type=float, default=0.05)
    ap.add_argument("--nc-steps", type=int, default=300)
    ap.add_argument("--epsilon", type=float, default=0.33, help="expected poison share per class (spectral)")
    args = ap.parse_args()

    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.defences.transformer.poisoning import STRIP

    from redline import zoo
    from redline.checks.fm10_activation_clustering import ActivationClustering
    from redline.checks.fm10_max_margin import MaxMargin
    from redline.checks.fm10_neural_cleanse import NeuralCleanse
    from redline.checks.fm10_spectral_signatures import SpectralSignatures
    from redline.checks.fm10_strip import Strip
    from redline.util.triggers import Trigger

    target = zoo.load_target("mnist_cnn_backdoor")
    data = zoo.load_data_for("mnist_cnn_backdoor")
    twin = zoo.load_target("mnist_cnn_clean")
    truth = np.zeros(len(data.x_train), dtype=bool)
    truth[data.meta["poisoned_indices"]] = True
    onehot = np.eye(10, dtype=np.float32)[data.y_train]
    clf = art_classifier(target)
    print(f"poisoned rows: {truth.sum()} of {len(truth)} (target class 0)")

    # -- activation clustering -------------------------------------------------------
    ours, t_ours = timed(lambda: ActivationClustering()(target, data, budget=10**6))
    art_ac = ActivationDefence(clf, data.x_train, onehot)
    (_, clean_list), t_art = timed(lambda: art_ac.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA",
                                                                cluster_analysis="smaller"))
    p_art, r_art = pr(np.asarray(clean_list) == 0, truth)
    m = ours.metrics
    print(f"\nactivation clustering   redline: precision {m['precision']:.3f} recall {m['recall']:.3f} "
          f"flagged classes {m['flagged_classes']}  {t_ours:.1f}s")
    print(f"                        ART    : precision {p_art:.3f} recall {r_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: precision {m['precision'] / max(p_art, 1e-9):.2f} "
          f"recall {m['recall'] / max(r_art, 1e-9):.2f} time {t_ours / t_art:.2f}")
    twin_ac = ActivationClustering()(twin, zoo.load_data_for("mnist_cnn_clean"), budget=10**6)
    print(f"                        clean twin: redline flags {twin_ac.metrics['flagged_samples']} rows")

    # -- spectral signatures ---------------------------------------------------------
    ours, t_ours = timed(lambda: SpectralSignatures(epsilon=args.epsilon)(target, data, budget=10**6))
    art_ss = SpectralSignatureDefense(clf, data.x_train, onehot, expected_pp_poison=args.epsilon, eps_multiplier=1.5)
    (_, clean_list), t_art = timed(art_ss.detect_poison)
    p_art, r_art = pr(np.asarray(clean_list) == 0, truth)
    m = ours.metrics
    every = m["remove_everywhere"]
    print(f"\nspectral signatures     redline: precision {m['precision']:.3f} recall {m['recall']:.3f} "
          f"flagged classes {m['flagged_classes']}  {t_ours:.1f}s  (remove-everywhere rule: precision "
          f"{every['precision']:.3f} recall {every['recall']:.3f})")
    print(f"                        ART    : precision {p_art:.3f} recall {r_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: precision {m['precision'] / max(p_art, 1e-9):.2f} "
          f"recall {m['recall'] / max(r_art, 1e-9):.2f} time {t_ours / t_art:.2f}")

    # -- STRIP ------------------------------------------------------------------------
    n = args.strip_inputs
    ours, t_ours = timed(lambda: Strip(n_inputs=n, overlays=args.overlays, frr=args.frr)(target, data, budget=10**6))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.x_test))
    calibration, clean = data.x_test[order[:n]], data.x_test[order[n:2 * n]]
    triggered = data.x_train[truth][:n]

    def art_strip():
        defended = STRIP(art_classifier(target, probabilities=True))(num_samples=args.overlays, false_acceptance_rate=args.frr)
        defended.mitigate(calibration)
        def abstained(x):  # ART's STRIP answers all-zero rows for inputs it rejects
            return np.all(defended.predict(x) == 0, axis=1)

        return float(abstained(clean).mean()), float(abstained(triggered).mean())

    (frr_art, det_art), t_art = timed(art_strip)
    m = ours.metrics
    print(f"\nSTRIP                   redline: FRR {m['false_rejection_rate']:.3f} detection {m['detection_rate']:.3f}  "
          f"{t_ours:.1f}s")
    print(f"                        ART    : FRR {frr_art:.3f} detection {det_art:.3f}  {t_art:.1f}s")
    print(f"                        ratios redline/ART: detection {m['detection_rate'] / max(det_art, 1e-9):.2f} "
          f"time {t_ours / t_art:.2f}")
    trig = Trigger.from_dict(data.meta["trigger"])
    twin_strip = Strip(n_inputs=n, overlays=args.overlays, frr=args.frr)(twin, zoo.load_data_for("mnist_cnn_clean"),
                                                                       budget=10**6)
    print(f"                        clean twin ({trig.kind} trigger stamped): redline detection "
          f"{twin_strip.metrics['detection_rate']:.3f}, FRR {twin_strip.metrics['false_rejection_rate']:.3f}")

    # -- model-only detectors (no ART peer for torch) ------------------------------------
    for check in (NeuralCleanse(steps=args.nc_steps), MaxMargin()):
        for name, model in (("backdoor", target), ("clean twin", twin)):
            finding, seconds = timed(lambda c=check, t=model: c(t, data, budget=10**7))
            print(f"\n{check.id:<24}{name:<11}: {finding.status.value:<15} flagged {finding.metrics['flagged_classes']} "
                  f"anomaly index {finding.metrics['anomaly_index']:.2f}  queries {finding.queries}  {seconds:.1f}s")


if __name__ == "__main__":
    main()
