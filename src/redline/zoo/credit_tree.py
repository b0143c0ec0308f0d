"""A German-credit-sized decision tree on generated applicants: the yardstick for tree extraction.

Tramer et al. (2016) measure path-finding extraction on a tree trained on the German credit
data (1,000 applicants, 20 attributes: 13 categorical, 7 numeric). No copy of that data
ships with redline, so this module generates applicants with the same layout: the same
number of codes per categorical attribute, integer durations and ages, a continuous credit
amount, and a default risk driven by a handful of attributes with interactions. The tree
fitted on them (30 leaves by default) mixes splits on categorical codes, integers and the
continuous amount, like the original.
"""
from __future__ import annotations

import numpy as np

# (name, kind, codes or (low, high)): the Statlog German credit attributes in their order.
CREDIT_FEATURES = (
    ("checking_status", "categorical", 4),
    ("duration_months", "integer", (4, 72)),
    ("credit_history", "categorical", 5),
    ("purpose", "categorical", 10),
    ("credit_amount", "continuous", (250.0, 18424.0)),
    ("savings", "categorical", 5),
    ("employment_years", "categorical", 5),
    ("installment_rate", "categorical", 4),
    ("personal_status", "categorical", 4),
    ("other_debtors", "categorical", 3),
    ("residence_years", "categorical", 4),
    ("property", "categorical", 4),
    ("age", "integer", (19, 75)),
    ("other_installments", "categorical", 3),
    ("housing", "categorical", 3),
    ("existing_credits", "categorical", 4),
    ("job", "categorical", 4),
    ("dependents", "categorical", 2),
    ("telephone", "categorical", 2),
    ("foreign_worker", "categorical", 2),
)


def credit_like_data(n: int = 3000, seed: int = 0):
    """``n`` generated applicants split in thirds (train, test, attacker pool), as a Dataset."""
    from ..data.base import Dataset

    rng = np.random.default_rng(seed)
    columns = []
    for _, kind, spread in CREDIT_FEATURES:
        if kind == "categorical":
            weights = rng.dirichlet(np.full(spread, 2.0))
            columns.append(rng.choice(spread, size=n, p=weights).astype(float))
        elif kind == "integer":
            low, high = spread
            columns.append(np.clip(np.round(rng.gamma(2.5, (high - low) / 8, size=n) + low), low, high))
        else:
            low, high = spread
            columns.append(np.clip(np.exp(rng.normal(np.log(2300.0), 0.75, size=n)), low, high))
    x = np.stack(columns, axis=1)
    checking, duration, history, purpose, amount, savings = (x[:, i] for i in range(6))
    age, housing = x[:, 12], x[:, 14]
    risk = (
        0.9 * (checking <= 1)
        + 0.03 * (duration - 20)
        + 0.6 * (history >= 3)
        - 0.5 * np.isin(purpose, (1, 3, 6))
        + 0.00012 * (amount - 3000) * (duration > 24)
        - 0.4 * (savings >= 3)
        - 0.02 * (age - 35) * (housing != 1)
        + 0.5 * (x[:, 7] == 3) * (x[:, 8] <= 1)
        + rng.normal(0, 0.8, size=n)
    )
    y = (risk > np.quantile(risk, 0.7)).astype(int)  # about 30% bad risks, as in the original
    x = x.astype(np.float32)
    third = n // 3
    return Dataset(
        "credit_like",
        x[:third], y[:third], x[third : 2 * third], y[third : 2 * third], x[2 * third :], y[2 * third :],
        feature_names=[name for name, _, _ in CREDIT_FEATURES],
        class_names=["good", "bad"],
    )


def credit_like_tree(leaves: int = 30, seed: int = 0):
    """(target, data): a scikit-learn tree with ``leaves`` leaves on :func:`credit_like_data`,
    answering each leaf's class frequencies; the integer attributes are declared integer."""
    from sklearn.tree import DecisionTreeClassifier

    from ..targets.base import FeatureConstraints, InputSpec
    from ..targets.sklearn import SklearnTarget

    data = credit_like_data(seed=seed)
    tree = DecisionTreeClassifier(max_leaf_nodes=leaves, min_samples_leaf=5, random_state=seed)
    tree.fit(data.x_train, data.y_train)
    integer = tuple(i for i, (_, kind, _) in enumerate(CREDIT_FEATURES) if kind == "integer")
    spec = InputSpec.from_data(data.x_train, FeatureConstraints(integer=integer))
    return SklearnTarget(tree, input_spec=spec, spec=f"generated:credit_tree{leaves}"), data
