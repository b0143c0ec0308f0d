"""Classifier two-sample test (Lopez-Paz & Oquab 2017): can a model tell the sample from the
reference? A logistic regression on the features and their squares is trained on half of a
balanced set of sample and reference rows; its accuracy on the other half is compared with
chance by a one-sided binomial test. With balanced held-out labels the correct count is
less spread than a binomial under no shift, so the test is conservative. scikit-learn and
scipy are imported lazily.
"""
from __future__ import annotations

import numpy as np

# Fewer sample rows than this leave too few held-out rows to beat chance: no test.
MIN_ROWS = 20


def classifier_test(reference: np.ndarray, sample: np.ndarray, rng: np.random.Generator) -> tuple[float, float, dict]:
    """(held-out accuracy, one-sided p-value, details). ``reference`` has at least as many rows as ``sample``."""
    from scipy.stats import binom
    from sklearn.linear_model import LogisticRegression

    n = len(sample)
    if n < MIN_ROWS:
        return 0.5, 1.0, {"note": f"classifier test needs at least {MIN_ROWS} sample rows, got {n}"}
    ref = reference[rng.choice(len(reference), n, replace=False)] if len(reference) > n else reference
    n = min(n, len(ref))
    x = np.vstack([ref[:n], sample[:n]])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    # Half of each side trains, the other half is held out.
    train = np.zeros(2 * n, dtype=bool)
    train[rng.permutation(n)[: n // 2]] = True
    train[n + rng.permutation(n)[: n // 2]] = True
    centre, scale = x[train].mean(axis=0), x[train].std(axis=0)
    z = (x - centre) / np.where(scale > 0, scale, 1.0)
    features = np.hstack([z, z * z])
    model = LogisticRegression(C=1.0, max_iter=200)
    model.fit(features[train], y[train])
    correct = int((model.predict(features[~train]) == y[~train]).sum())
    held_out = int((~train).sum())
    p = float(binom.sf(correct - 1, held_out, 0.5))
    return correct / held_out, p, {"held_out": held_out}
