import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.util.reference_models import (
    offline_plan,
    online_plan,
    surrogate_architecture,
    train_reference_models,
)


def test_online_plan_pairs_are_disjoint_and_balanced_at_half():
    mask = online_plan(100, 6, 50, np.random.default_rng(0))
    assert mask.shape == (6, 100) and (mask.sum(axis=1) == 50).all()
    for k in range(0, 6, 2):
        assert not (mask[k] & mask[k + 1]).any()
    assert (mask.sum(axis=0) == 3).all()  # every row in exactly half of the models
    capped = online_plan(100, 3, 80, np.random.default_rng(0))
    assert (capped.sum(axis=1) == 50).all()  # at most half the rows


def test_offline_plan_and_invalid_plans():
    mask = offline_plan(40, 5, 10, np.random.default_rng(0))
    assert (mask.sum(axis=1) == 10).all() and len({m.tobytes() for m in mask}) == 5
    with pytest.raises(ValueError):
        offline_plan(40, 0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError):
        online_plan(3, 2, 10, np.random.default_rng(0))


def test_surrogate_architecture_choice():
    assert surrogate_architecture((1, 28, 28), "image") == "cnn"
    assert surrogate_architecture((1, 8, 8), "image") == "mlp"
    assert surrogate_architecture((12,), "tabular") == "mlp"


def test_batched_surrogates_train_each_on_its_own_rows(blob_data):
    x = np.concatenate([blob_data.x_train, blob_data.x_test])
    y = np.concatenate([blob_data.y_train, blob_data.y_test])
    rng = np.random.default_rng(0)
    y_noisy = np.where(rng.random(len(y)) < 0.3, rng.integers(0, 3, len(y)), y)  # something to memorise
    mask = online_plan(len(x), 4, 100, rng)
    target = ArrayTarget(np.zeros((5, 3)), np.zeros(3))  # not trainable: surrogate
    refs = train_reference_models(target, x, y_noisy, mask, modality="tabular", seed=0)
    assert refs.source == "surrogate:mlp" and refs.n_models == 4
    probs = refs.predict_proba(x)
    assert probs.shape == (4, len(x), 3)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)
    p_label = np.take_along_axis(probs, np.broadcast_to(y_noisy[None, :, None], (4, len(x), 1)), -1)[..., 0]
    # Each model fits its own training rows far better than the rows it did not see.
    for k in range(4):
        assert p_label[k, mask[k]].mean() > p_label[k, ~mask[k]].mean() + 0.15
    again = train_reference_models(target, x, y_noisy, mask, modality="tabular", seed=0).predict_proba(x)
    np.testing.assert_allclose(again, probs, atol=1e-6)  # seeded


def test_recipe_source_needs_a_trainable_target(blob_data):
    target = ArrayTarget(np.zeros((5, 3)), np.zeros(3))
    mask = offline_plan(len(blob_data.x_pool), 2, 50, np.random.default_rng(0))
    with pytest.raises(Exception, match="training recipe"):
        train_reference_models(target, blob_data.x_pool, blob_data.y_pool, mask, modality="tabular", source="recipe")
    with pytest.raises(ValueError, match="source"):
        train_reference_models(target, blob_data.x_pool, blob_data.y_pool, mask, modality="tabular", source="x")
