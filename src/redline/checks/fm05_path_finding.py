"""FM05 model stealing by path-finding: rebuild a decision tree leaf by leaf (Tramer et al. 2016).

A tree's answer identifies the leaf an input reaches, as long as leaves answer distinct
outputs (probability rows, or leaf ids). Starting from one input, the attack changes one
feature at a time with the others fixed: a categorical feature is set to each of its codes,
an ordered one is pushed to the ends of its range and, where the answer changes, the
threshold is found by bisection. The codes and intervals that keep the answer are the
leaf's box; every input that answered differently lies in another leaf and seeds the next
exploration. When no seeds are left, batches of attacker-owned and uniform random inputs
check the copy; inputs it gets wrong seed more explorations, until a batch finds no error.

The copy is exact on the domain when each leaf has its own output and thresholds fall on the
grid (categorical and integer features); continuous thresholds are exact to ``tolerance``
of the feature's range. Leaves that share an output can merge into one box; the
verification rounds repair most of what that gets wrong. ``infer_known=True`` answers
probes that fall in leaves already mapped from the copy instead of the target: about a
quarter fewer queries when leaves answer distinct outputs, worse copies when they do not.
"""
from __future__ import annotations

import collections

import numpy as np

from ..util.box_model import Box, BoxModel, save_box_model_onnx
from ..util.fidelity import measure_fidelity
from ..util.input_domain import CATEGORICAL, INTEGER, InputDomain, infer_domain
from .base import Check, CheckContext, Needs, NotApplicable, Outcome


class PathFinding(Check):
    id = "FM05.path_finding"
    mode = "FM05"
    title = "Model stealing by path-finding (decision trees)"
    needs = Needs(modality=("tabular",))
    default_budget = 2_000

    def __init__(
        self,
        tolerance: float = 1e-3,
        ordinal_categories: bool = True,
        infer_known: bool = False,
        verify_batch: int = 50,
        identity_decimals: int = 9,
        max_categories: int = 10,
        fidelity_threshold: float = 0.99,
        n_uniform: int = 1000,
    ):
        self.tolerance = tolerance
        self.ordinal_categories = ordinal_categories
        self.infer_known = infer_known
        self.verify_batch = verify_batch
        self.identity_decimals = identity_decimals
        self.max_categories = max_categories
        self.fidelity_threshold = fidelity_threshold
        self.n_uniform = n_uniform

    def _validate(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError("tolerance must be in (0, 1) (a share of each feature's range)")
        if int(self.verify_batch) < 1:
            raise ValueError("verify_batch must be at least 1")
        if not 0 < self.fidelity_threshold <= 1:
            raise ValueError("fidelity_threshold must be in (0, 1]")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        spec = target.input_spec
        x_pool = np.asarray(data.attacker_data()[0], dtype=np.float64).reshape(-1, spec.n_features)
        domain = infer_domain(spec, x_pool, int(self.max_categories))
        if budget < 2:
            raise NotApplicable(f"path-finding needs more than {budget} queries to explore even one leaf")
        pool = _snap(domain, x_pool[rng.permutation(len(x_pool))])

        oracle = _Oracle(target, int(self.identity_decimals))
        finder = _PathFinder(oracle, domain, float(self.tolerance), bool(self.ordinal_categories), bool(self.infer_known))
        complete = finder.run(pool, int(self.verify_batch), rng)
        model = finder.model
        attack_queries = target.ledger.attack
        if not len(model):
            raise NotApplicable(f"the budget of {budget} queries ran out before a single leaf was mapped")

        def stolen(x):
            return model.predict(np.asarray(x, dtype=np.float64).reshape(len(x), -1))

        metrics = measure_fidelity(target, stolen, data.x_test, domain, rng, int(self.n_uniform))
        metrics.update(
            {
                "queries": int(attack_queries),
                "leaves": len(model),
                "distinct_outputs": len(oracle.rows),
                "complete": bool(complete),
                "verification_rounds": finder.rounds,
                "inferred_probes": finder.inferred,
            }
        )
        true_leaves = _true_leaf_count(target)
        if true_leaves is not None:
            metrics["true_leaves"] = true_leaves

        evidence = {}
        path, rel = ctx.artifact(f"{self.id}.onnx")
        if path is not None:
            save_box_model_onnx(path, model)
            evidence["model"] = rel
        vulnerable = metrics["fidelity"] >= self.fidelity_threshold
        summary = (
            f"{attack_queries} queries mapped {len(model)} leaves"
            f"{f' (the tree has {true_leaves})' if true_leaves is not None else ''}; the copy agrees with the "
            f"target on {metrics['fidelity']:.1%} of held-out and {metrics['fidelity_uniform']:.1%} of random inputs."
        )
        if not complete:
            summary += " The budget ran out before the copy passed a verification round."
        if len(oracle.rows) > 0.5 * attack_queries:
            summary += " Nearly every query answered differently, as a non-tree model does."
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)


class _OutOfBudget(Exception):
    """The next batch of probes does not fit in what is left of the budget."""


class _Oracle:
    """Memoised access to the target: each distinct answer gets an integer id (the leaf identity)."""

    def __init__(self, target, decimals: int):
        self.target = target
        self.decimals = decimals
        self.labels_only = target.capabilities.outputs != "probabilities"
        self.answers: dict[bytes, int] = {}
        self.rows: list[np.ndarray] = []
        self._ids: dict[bytes, int] = {}

    @property
    def n_outputs(self) -> int:
        return int(self.target.n_classes)

    def ask(self, flat: np.ndarray) -> np.ndarray:
        """Output ids of the rows of ``flat``; only rows never asked before are sent."""
        spec = self.target.input_spec
        flat = np.asarray(flat, dtype=spec.dtype).astype(np.float64)
        keys = [row.tobytes() for row in flat]
        new = {}
        for key, row in zip(keys, flat):
            if key not in self.answers and key not in new:
                new[key] = row
        if new:
            remaining = self.target.ledger.remaining
            if remaining is not None and len(new) > remaining:
                raise _OutOfBudget
            rows = np.stack(list(new.values()))
            out = np.asarray(self.target.predict(rows.reshape(-1, *spec.shape).astype(spec.dtype)))
            for key, answer in zip(new, out):
                self.answers[key] = self._identify(answer)
        return np.array([self.answers[k] for k in keys], dtype=np.int64)

    def _identify(self, answer: np.ndarray) -> int:
        if self.labels_only:
            row = np.zeros(self.n_outputs)
            row[int(answer)] = 1.0
        else:
            row = np.asarray(answer, dtype=np.float64)
        key = np.round(row, self.decimals).tobytes()
        if key not in self._ids:
            self._ids[key] = len(self.rows)
            self.rows.append(row)
        return self._ids[key]


class _PathFinder:
    """The exploration: a queue of seeds, one box per explored seed, then verification rounds."""

    def __init__(self, oracle: _Oracle, domain: InputDomain, tolerance: float, ordinal: bool, infer_known: bool = True):
        self.oracle = oracle
        self.infer_known = infer_known
        self.inferred = 0
        self.domain = domain
        self.tolerance = tolerance
        self.ordinal = ordinal
        self.model = BoxModel(domain, [], oracle.n_outputs)
        self.seeds: collections.deque[tuple[np.ndarray, int]] = collections.deque()  # (input, output id)
        self.rounds = 0

    def run(self, pool: np.ndarray, verify_batch: int, rng: np.random.Generator, clean_rounds: int = 2) -> bool:
        """Explore until ``clean_rounds`` verification batches in a row find no error (True),
        or the budget ends or stops paying off (False)."""
        pool_left = list(pool)
        clean = 0
        try:
            first = pool_left.pop(0)
            self.seeds.append((first, int(self.oracle.ask(first[None])[0])))
            while clean < clean_rounds:
                explored = self._drain()
                if self.rounds and not clean and not explored:
                    return False  # the last round's errors produced no new leaf: no progress to make
                remaining = self.oracle.target.ledger.remaining
                n = verify_batch if remaining is None else min(verify_batch, remaining)
                if n == 0:
                    return False
                probes = self._verification_probes(pool_left, n, rng)
                ids = self.oracle.ask(probes)
                self.rounds += 1
                wrong = self.model.predict_ids(probes) != ids
                clean = 0 if wrong.any() else clean + 1
                self.seeds.extend(zip(probes[wrong], ids[wrong]))
            return True
        except _OutOfBudget:
            return False

    def _verification_probes(self, pool_left: list, n: int, rng: np.random.Generator) -> np.ndarray:
        """Half drawn inside the boxes found, one box after another (a box grown across leaves
        that share an output hides the leaves inside it), a quarter attacker-owned inputs
        (where the copy will be used), the rest uniform over the domain."""
        n_boxes = n // 2
        n_pool = min(len(pool_left), (n - n_boxes) // 2)
        boxes = self.model.boxes
        picks = rng.integers(0, len(boxes), size=n_boxes)
        inside = [boxes[b].sample(self.domain, rng, 1) for b in picks]
        parts = inside + [np.asarray(pool_left[:n_pool]).reshape(n_pool, -1), self.domain.sample(rng, n - n_boxes - n_pool)]
        del pool_left[:n_pool]
        return np.concatenate(parts)

    def _drain(self) -> int:
        """Explore every queued seed the copy does not yet answer correctly; return how many."""
        explored = 0
        while self.seeds:
            seed, output_id = self.seeds.popleft()
            if len(self.model) and self.model.predict_ids(seed[None])[0] == output_id:
                continue
            box, found = self._explore(seed, output_id)
            known = next((k for k, other in enumerate(self.model.boxes) if _same_box(box, other)), None)
            if known is not None:
                # A leaf already found, yet a box grown across leaves that share an output
                # answers for this seed: let the leaf found here win where they overlap.
                self.model.promote(known)
                explored += 1
                continue
            self.model.add(box)
            self.seeds.extend(found)
            explored += 1
        return explored

    def _explore(self, x: np.ndarray, o: int) -> tuple[Box, list[tuple[np.ndarray, int]]]:
        """The box of the leaf ``x`` reaches (answering ``o``), and (input, id) seen in other leaves."""
        d = self.domain.n_features
        found: list[tuple[np.ndarray, int]] = []
        lower, upper = np.full(d, -np.inf), np.full(d, np.inf)
        masks: dict[int, np.ndarray] = {}
        probes, owners = [], []
        for i, f in enumerate(self.domain.features):
            candidates = f.values if f.kind == CATEGORICAL else (f.lower, f.upper)
            for j, v in enumerate(candidates):
                if v != x[i]:
                    row = x.copy()
                    row[i] = v
                    probes.append(row)
                    owners.append((i, j))
        ids = self._answers(np.asarray(probes).reshape(len(probes), d), o)
        answer = {owner: int(a) for owner, a in zip(owners, ids)}

        searches = []  # [feature, side, inside value, outside value, its id]: thresholds to bisect
        for i, f in enumerate(self.domain.features):
            if f.kind == CATEGORICAL:
                here = int(np.argmin(np.abs(np.asarray(f.values) - x[i])))
                same = np.array([j == here or answer[(i, j)] == o for j in range(len(f.values))])
                masks[i] = _run_around(same, here) if self.ordinal else same
                continue
            for side, end in ((0, f.lower), (1, f.upper)):
                if end == x[i] or answer[(i, side)] == o:
                    continue  # the leaf reaches the end of the range on this side
                searches.append([i, side, x[i], end, answer[(i, side)]])
        for i, side, inside, outside, outside_id in self._bisect(x, o, searches):
            # The threshold lies between the last inside and first outside value: halfway for
            # continuous features, and between two whole numbers for integer ones.
            half = 0.5 if self.domain.features[i].kind == INTEGER else abs(outside - inside) / 2
            if side:
                upper[i] = inside + half
            else:
                lower[i] = inside - half
            beyond = x.copy()
            beyond[i] = outside
            found.append((beyond, outside_id))
        found += [(row, int(a)) for row, a in zip(probes, ids) if a != o]
        return Box(lower, upper, masks, self.oracle.rows[o], o), found

    def _answers(self, rows: np.ndarray, o: int) -> np.ndarray:
        """Output ids of probes made while exploring a leaf that answers ``o``. A probe inside a
        leaf already mapped that answers differently is known to lie outside this leaf, so its
        id is taken from the copy instead of a query (exact when leaves answer distinct outputs)."""
        if not self.infer_known or not len(self.model):
            return self.oracle.ask(rows)
        predicted = self.model.predict_ids(rows)
        known = (self.model.misses(rows) == 0).any(axis=1) & (predicted != o)
        ids = predicted.copy()
        if not known.all():
            ids[~known] = self.oracle.ask(rows[~known])
        self.inferred += int(known.sum())
        return ids

    def _bisect(self, x: np.ndarray, o: int, searches: list[list]) -> list[list]:
        """Narrow every [feature, side, inside, outside, outside id] bracket to the threshold,
        all features in lockstep."""
        features = self.domain.features

        def settled(s):
            f = features[s[0]]
            gap = abs(s[3] - s[2])
            return gap <= 1 if f.kind == INTEGER else gap <= self.tolerance * (f.upper - f.lower)

        active = [s for s in searches if not settled(s)]
        while active:
            rows = []
            for s in active:
                mid = (s[2] + s[3]) / 2
                if features[s[0]].kind == INTEGER:
                    mid = np.floor(mid) if s[3] > s[2] else np.ceil(mid)
                row = x.copy()
                row[s[0]] = mid
                rows.append(row)
            ids = self._answers(np.asarray(rows), o)
            for s, row, a in zip(active, rows, ids):
                if a == o:
                    s[2] = row[s[0]]
                else:
                    s[3], s[4] = row[s[0]], int(a)
            active = [s for s in active if not settled(s)]
        return searches


def _run_around(same: np.ndarray, here: int) -> np.ndarray:
    """The contiguous stretch of True in ``same`` that contains index ``here``."""
    run = np.zeros_like(same)
    lo = hi = here
    while lo > 0 and same[lo - 1]:
        lo -= 1
    while hi < len(same) - 1 and same[hi + 1]:
        hi += 1
    run[lo : hi + 1] = True
    return run


def _same_box(a: Box, b: Box) -> bool:
    return (
        a.output_id == b.output_id
        and np.array_equal(a.lower, b.lower)
        and np.array_equal(a.upper, b.upper)
        and all(np.array_equal(a.masks[i], b.masks[i]) for i in a.masks)
    )


def _snap(domain: InputDomain, flat: np.ndarray) -> np.ndarray:
    """Attacker inputs moved onto the domain: nearest code, whole numbers, inside each range."""
    out = flat.copy()
    for i, f in enumerate(domain.features):
        if f.kind == CATEGORICAL:
            values = np.asarray(f.values)
            out[:, i] = values[np.abs(out[:, i, None] - values[None, :]).argmin(axis=1)]
        else:
            out[:, i] = np.clip(np.round(out[:, i]) if f.kind == INTEGER else out[:, i], f.lower, f.upper)
    return out


def _true_leaf_count(target) -> int | None:
    """The auditor's view of an in-memory scikit-learn tree, to compare with the leaves found."""
    estimator = getattr(target, "estimator", None)
    tree = getattr(estimator, "tree_", None)
    return None if tree is None else int(tree.n_leaves)
