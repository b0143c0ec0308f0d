import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import (
    bright_top_tiles,
    counting_torch_target_class,
    train_two_class_net,
    two_blobs,
)

from redline.checks.base import CheckContext
from redline.checks.evasion.feasible import make_feasible
from redline.checks.evasion.fm01_square import (
    SquareAttack,
    _Layout,
    _LinfValues,
    bump,
    margin_loss,
    window_fraction,
)
from redline.data.base import Dataset
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status
from redline.targets.base import FeatureConstraints, InputSpec

Counting = counting_torch_target_class()



@pytest.fixture(scope="module")
def blobs():
    x, y = two_blobs(800, binary_tail=True)  # three binary (integer) features
    return Dataset("blobs", x[:400], y[:400], x[400:], y[400:])


@pytest.fixture(scope="module")
def images():
    x, y = bright_top_tiles(600)
    return Dataset("tiles", x[:300], y[:300], x[300:], y[300:], modality="image")


@pytest.fixture(scope="module")
def model(blobs):
    return train_two_class_net(blobs.x_train, blobs.y_train)


@pytest.fixture(scope="module")
def image_model(images):
    return train_two_class_net(images.x_train, images.y_train)


def target(model, shape=(10,), constraints=None):
    Counting.answered = 0
    spec = InputSpec(shape=shape, lower=0.0, upper=1.0, constraints=constraints or FeatureConstraints())
    return Counting(model, input_spec=spec, n_classes=2)


def _sizes(ex, norm):
    delta = (ex["x_adv"] - ex["x"]).reshape(len(ex["x"]), -1)
    return np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.0)])
def test_undefended_model_is_flagged_within_budget_ball_and_bounds(model, blobs, tmp_path, norm, eps):
    t = target(model)
    finding = SquareAttack(norm=norm, epsilon=eps, n_inputs=30)(t, blobs, budget=3000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["success_rate"] > 0.8 and m["clean_accuracy"] >= 0.75
    assert m["robust_accuracy"] == pytest.approx(m["clean_accuracy"] * (1 - m["success_rate"]))
    assert 0 < finding.queries <= 3000
    assert finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    assert ex["queries"].max() <= m["queries_per_input"] == 3000 // m["attacked_inputs"]
    assert _sizes(ex, norm).max() <= eps + 1e-5
    assert ex["x_adv"].min() >= 0 and ex["x_adv"].max() <= 1
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.0)])
def test_square_windows_on_images(image_model, images, tmp_path, norm, eps):
    t = target(image_model, shape=(1, 8, 8))
    finding = SquareAttack(norm=norm, epsilon=eps, n_inputs=20)(t, images, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    assert finding.queries <= 2000 and finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    assert _sizes(ex, norm).max() <= eps + 1e-5
    assert any(p.endswith("examples.png") for p in finding.evidence["plots"])
    curve = finding.evidence["curve_queries"]
    assert curve["success_rate"] == sorted(curve["success_rate"])  # success can only grow with queries


def test_robust_control_is_not_flagged(model, blobs):
    # Epsilon far below the model's margin on almost every input: the decision cannot change.
    finding = SquareAttack(epsilon=0.005, n_inputs=30)(target(model), blobs, budget=3000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["success_rate"] < 0.3
    assert finding.queries <= 3000


def test_labels_only_target_is_not_applicable(model, blobs):
    finding = SquareAttack()(LabelOnlyTarget(target(model)), blobs)
    assert finding.status is Status.NOT_APPLICABLE and "probabilities" in finding.reason


def test_feature_constraints_are_respected(model, blobs, tmp_path):
    fc = FeatureConstraints(immutable=(0, 1, 2), integer=(7, 8, 9))
    finding = SquareAttack(epsilon=0.6, n_inputs=20)(target(model, constraints=fc), blobs, budget=2000,
                                                      ctx=CheckContext(tmp_path))
    ex = np.load(tmp_path / finding.evidence["examples"])
    np.testing.assert_array_equal(ex["x_adv"][:, :3], ex["x"][:, :3])
    np.testing.assert_array_equal(ex["x_adv"][:, 7:], np.round(ex["x_adv"][:, 7:]))
    assert _sizes(ex, "linf").max() <= 0.6 + 1e-5
    assert finding.metrics["success_rate"] > 0  # the free features still suffice for some inputs


def test_same_seed_same_result(model, blobs, tmp_path):
    runs = []
    for sub in ("a", "b"):
        f = SquareAttack(epsilon=0.2, n_inputs=20)(target(model), blobs, budget=1000, seed=3,
                                                   ctx=CheckContext(tmp_path / sub))
        runs.append((f.metrics, f.queries, np.load(tmp_path / sub / f.evidence["examples"])["x_adv"]))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_tiny_budget_attacks_fewer_inputs_instead_of_overspending(model, blobs):
    finding = SquareAttack(epsilon=0.3, n_inputs=40)(target(model), blobs, budget=7)
    assert finding.queries <= 7 and finding.metrics["attacked_inputs"] == 7


def test_bad_parameters_are_reported_as_errors(model, blobs):
    finding = SquareAttack(norm="l7")(target(model), blobs)
    assert finding.status is Status.ERROR and "norm" in finding.reason


def test_building_blocks():
    assert window_fraction(0.8, 0, 1000) == 0.8
    assert window_fraction(0.8, 999, 1000) == pytest.approx(0.8 / 16)  # the 10,000-query schedule, cut short
    assert window_fraction(0.8, 19_999, 20_000) == pytest.approx(0.8 / 512)
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(margin_loss(probs, np.array([0, 0])), [np.log(0.7 / 0.2), np.log(0.2 / 0.5)])
    b = bump(5, np.random.default_rng(0))
    assert b.shape == (5, 5) and np.linalg.norm(b) == pytest.approx(1.0)
    halves = (b[:2], b[2:]) if (b[:2] > 0).all() else (b[:, :2], b[:, 2:])  # randomly transposed
    assert (halves[0] > 0).all() and (halves[1] < 0).all()


# -- the fast steps against the plain full-array formulas they replace ----------------------
# The attack builds candidates from window indices and sums norms over zero-filled arrays;
# these references use whole-input boolean masks. Same rng seed, so the same draws: the
# candidates must agree bit for bit (this is what keeps results identical to the plain code).
def _reference_masks(k, c, h, w, side, image, rng):
    if not image:
        ranks = rng.random((k, w)).argsort(axis=1).argsort(axis=1)
        return (ranks < side)[:, None, None, :]
    r0 = rng.integers(0, h - side + 1, k)[:, None]
    c0 = rng.integers(0, w - side + 1, k)[:, None]
    rows = (np.arange(h) >= r0) & (np.arange(h) < r0 + side)
    cols = (np.arange(w) >= c0) & (np.arange(w) < c0 + side)
    return (rows[:, :, None] & cols[:, None, :])[:, None]


def _reference_linf_step(x0, best, eps, side, image, spec, rng):
    k, c, h, w = x0.shape
    mask = _reference_masks(k, c, h, w, side, image, rng)
    signs = rng.choice([-1.0, 1.0], size=(k, c, 1, 1) if image else (k, c, 1, w))
    cand = np.where(mask, np.clip(x0 + eps * signs, spec.lower, spec.upper), best)
    same = ~(mask & (np.abs(cand - best) > 1e-7)).reshape(k, -1).any(axis=1)
    flipped = np.clip(x0 - eps * signs, spec.lower, spec.upper)
    cand[same] = np.where(mask[same], flipped[same], best[same])
    out = make_feasible(cand.astype(np.float32).reshape(k, *spec.shape), x0.astype(np.float32).reshape(k, *spec.shape),
                        spec, eps, "linf")
    return out.reshape(x0.shape), same


def _reference_l2_step(x0, best, eps, side, image, rng):
    def norms(a, axes):
        return np.sqrt((a**2).sum(axis=axes, keepdims=True))

    k, c, h, w = x0.shape
    delta = best - x0
    m1, m2 = _reference_masks(k, c, h, w, side, image, rng), _reference_masks(k, c, h, w, side, image, rng)
    if image:
        pattern, block = np.zeros((k, 1, h, w)), bump(side, rng)
        for i in range(k):
            top, left = m1[i, 0].any(axis=1).argmax(), m1[i, 0].any(axis=0).argmax()
            pattern[i, 0, top:top + side, left:left + side] = block
    else:
        pattern = rng.standard_normal((k, 1, 1, w)) * m1
    in_window, total, both = norms(delta * m1, (2, 3)), norms(delta, (1, 2, 3)), norms(delta * (m1 | m2), (2, 3))
    new = pattern * rng.choice([-1.0, 1.0], size=(k, c, 1, 1)) + delta * m1 / (1e-10 + in_window)
    new = new / np.maximum(norms(new, (2, 3)), 1e-12) * np.sqrt(np.maximum(eps**2 - total**2, 0.0) / c + both**2)
    delta = np.where(m1, new, np.where(m2, 0.0, delta))
    return x0 + delta / np.maximum(norms(delta, (1, 2, 3)), 1e-12) * eps


_STEP_CASES = {
    # two channels, a non-square image, a range that is not [0, 1], and rows that sit on the lower bound
    "image": InputSpec(shape=(2, 19, 23), lower=-1.0, upper=2.0),
    "table+constraints": InputSpec(shape=(12,), constraints=FeatureConstraints(immutable=(0,), integer=(10, 11))),
}


def _step_setup(spec, seed=0):
    rng = np.random.default_rng(seed)
    layout = _Layout(spec.shape)
    dims = (layout.c, layout.h, layout.w)
    x = rng.uniform(spec.lower, spec.upper, (6, *spec.shape)).astype(np.float32)
    x[:2] = spec.lower  # a window pushed down there changes nothing: the step must flip its signs
    if spec.constraints:
        x[:, 10:] = np.round(x[:, 10:])
    img = x.reshape(6, *dims).astype(np.float64)
    return rng, layout, dims, x, img


@pytest.mark.parametrize("case", list(_STEP_CASES))
@pytest.mark.parametrize("fraction", [0.3, 0.02])
def test_linf_step_equals_the_full_array_formula(case, fraction):
    spec, eps = _STEP_CASES[case], 0.25
    rng, layout, dims, x, img = _step_setup(spec)

    def feasible(cand, rows):
        cand = np.asarray(cand, dtype=np.float32).reshape(len(rows), *spec.shape)
        return make_feasible(cand, x[rows], spec, eps, "linf").reshape(len(rows), *dims)

    best = feasible(img + eps * rng.choice([-1.0, 1.0], size=img.shape), np.arange(6))
    best[:2] = x[:2].reshape(2, *dims)
    rows = np.array([0, 1, 3, 4])  # not all inputs, not contiguous
    side = layout.side(fraction, smallest=1)
    flips = 0
    for seed in range(8):
        fast = SquareAttack()._linf_step(rows, best, _LinfValues(img, eps, spec, feasible), fraction, layout,
                                         np.random.default_rng(seed), feasible)
        want, flipped = _reference_linf_step(img[rows], best[rows].astype(np.float64), eps, side, layout.image, spec,
                                             np.random.default_rng(seed))
        assert fast.dtype == np.float32
        np.testing.assert_array_equal(fast, want)
        flips += flipped.sum()
        if layout.image:  # no constraints: every proposal changes its input
            assert (fast.reshape(len(rows), -1) != best[rows].reshape(len(rows), -1)).any(axis=1).all()
    if layout.image:
        assert flips > 0  # the sign-flip branch ran (rows 0 and 1 sit on the lower bound)


@pytest.mark.parametrize("case", list(_STEP_CASES))
@pytest.mark.parametrize("fraction", [0.1, 0.005])
def test_l2_step_equals_the_full_array_formula(case, fraction):
    spec, eps = _STEP_CASES[case], 1.5
    rng, layout, _, x, img = _step_setup(spec)
    best = make_feasible((img + rng.normal(0, 0.2, img.shape)).astype(np.float32).reshape(x.shape), x, spec, eps,
                         "l2").reshape(img.shape)
    rows = np.array([1, 2, 5])
    side = layout.side(fraction, smallest=3 if layout.image else 1)
    if layout.image and side % 2 == 0 and side + 1 < min(layout.h, layout.w):
        side += 1
    for seed in range(5):
        delta = best[rows] - img[rows]
        fast = SquareAttack(norm="l2")._l2_step(img[rows], delta, eps, fraction, layout, np.random.default_rng(seed))
        want = _reference_l2_step(img[rows], best[rows].astype(np.float64), eps, side, layout.image,
                                  np.random.default_rng(seed))
        np.testing.assert_array_equal(fast, want)
        assert np.sqrt(((fast - img[rows]) ** 2).reshape(len(rows), -1).sum(axis=1)) == pytest.approx(eps)
