"""FM05 model stealing by path-finding: rebuild a decision tree leaf by leaf (Tramer et al. 2016).

A tree's answer identifies the leaf an input reaches, as long as leaves answer distinct
outputs (probability rows, or leaf ids), and a leaf is a box: an interval on each ordered
feature (categorical codes count as ordered with ``ordinal_categories``, as scikit-learn
splits them), a set of codes on each unordered one. From one input the attack finds the
box side by side and every input that answered differently seeds the next leaf. What keeps
a German-credit-sized tree (20 features, 30 leaves) to about 900 queries:

* sides a neighbouring leaf leaves open are tested in groups: if moving several features
  at once keeps the answer, each move alone keeps it (the box), so most untouched features
  cost a fraction of a query;
* a tree reuses each threshold in many leaves, so cuts already found are tried before any
  bisection, and the side a seed came from is known without a query;
* bisection runs over the grid (integers, codes) or, for continuous features, over the
  attacker's own values first, then a few halvings into the gap.

Leaves that share an output can fool a group test (a move lands in a twin leaf), so a box
built with groups is checked at two random inputs; verification rounds (attacker-owned,
uniform and in-box inputs, plus one input in every overlap of two boxes with different
outputs) correct the copy: a box holding an input that answers otherwise is shrunk, a
leaf nobody explored is explored, until two rounds find no error. ``infer_known=True``
answers probes that fall in leaves already mapped from the copy instead of the target
(fewer queries when leaves answer distinct outputs, worse copies when they do not).
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np

from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .box_model import Box, BoxModel, save_box_model_onnx
from .fidelity import (
    FIDELITY_PARAM_DOCS,
    judge_copy,
    agreement_phrase,
    copy_evidence,
    measure_fidelity,
    random_inputs_phrase,
)
from .input_domain import (
    CATEGORICAL,
    CONTINUOUS,
    INTEGER,
    InputDomain,
    infer_domain,
)


class PathFinding(Check):
    id = "FM05.path_finding"
    mode = "FM05"
    title = "Model stealing by path-finding (decision trees)"
    needs = Needs(modality=("tabular",), roles=("test",), attacker=True, labels=False)
    default_budget = 2_000
    metrics = (
        "complete", "distinct_outputs", "fidelity", "fidelity_beyond_majority", "majority_share", "other_answers", "fidelity_uniform", "inferred_probes", "leaves",
        "max_abs_probability_error", "queries", "true_leaves", "verification_rounds"
    )
    param_docs = {
        "tolerance": "precision of each recovered threshold, as a share of the feature's range, in (0, 1)",
        "ordinal_categories": "treat categorical features as ordered (true) or probe each category (false)",
        "infer_known": "infer leaf answers from the copy instead of querying where it is sure (saves queries)",
        "verify_batch": "random inputs per verification round of the recovered tree",
        "identity_decimals": "decimals to which answers are rounded to tell leaves apart",
        "max_categories": "features with at most this many distinct values count as categorical",
        **FIDELITY_PARAM_DOCS,
    }

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
        if int(self.verify_batch) < 1 or int(self.n_uniform) < 1:
            raise ValueError("verify_batch and n_uniform must be at least 1")
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
        finder = _PathFinder(
            oracle, domain, pool, float(self.tolerance), bool(self.ordinal_categories), bool(self.infer_known)
        )
        complete = finder.run(int(self.verify_batch), rng)
        model = finder.model
        attack_queries = target.ledger.attack
        if not len(model):
            raise NotApplicable(f"the budget of {budget} queries ran out before a single leaf was mapped")

        def stolen(x):
            return model.predict(np.asarray(x, dtype=np.float64).reshape(len(x), -1))

        metrics = measure_fidelity(target, stolen, data.evaluation_data()[0], domain, rng, int(self.n_uniform))
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

        evidence = copy_evidence(ctx, self.id, lambda path: save_box_model_onnx(path, model))
        not_a_tree = len(oracle.rows) > 0.5 * attack_queries
        unfinished = ""
        if finder.stopped == "budget" and not not_a_tree:
            # The copy is unfinished, not failed: one that falls short is inconclusive.
            unfinished = self._unfinished_reason(budget, attack_queries, len(model), true_leaves,
                                                 int(self.verify_batch))
        vulnerable, undecided = judge_copy(metrics, self.fidelity_threshold, unfinished)
        summary = (
            f"{attack_queries} queries mapped {len(model)} leaves"
            f"{f' (the tree has {true_leaves})' if true_leaves is not None else ''}; the copy {agreement_phrase(metrics, random_inputs_phrase(spec))}."
        )
        if finder.stopped == "budget":
            summary += " The budget ran out before the copy passed two verification rounds in a row."
        elif finder.stopped == "stalled":
            summary += (" Verification found errors that exploring and shrinking boxes did not fix, so a larger "
                        "budget would not finish the copy.")
        if not_a_tree:
            summary += " Nearly every query answered differently, as a non-tree model does."
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)


    def _unfinished_reason(self, budget: int, queries: int, leaves: int, true_leaves: int | None,
                           verify_batch: int) -> str:
        """Why an unfinished copy decides nothing, and what budget might finish it: at the rate
        so far, mapping the leaves of the tree not yet found (known only for a tree the auditor
        can read) plus a few verification rounds. Leaves that share an answer can take more
        boxes than the tree has leaves, so it is a floor, not a promise."""
        said = (f"the budget of {budget} queries ran out after mapping {leaves} leaves, before the copy passed two "
                f"verification rounds in a row; the unfinished copy falls short of fidelity_threshold="
                f"{self.fidelity_threshold:g}, which a finished one might reach")
        if true_leaves is not None and 0 < leaves < true_leaves:
            estimate = int(np.ceil(queries * true_leaves / leaves)) + 3 * verify_batch
            estimate = int(-(-estimate // 100) * 100)  # rounded up to hundreds
            return (f"{said}: mapping the tree's {true_leaves} leaves at the rate so far ({queries / leaves:.0f} "
                    f"queries a leaf) takes a budget of at least about {estimate} (--budget {estimate})")
        if true_leaves is not None:
            why = (f"its {leaves} boxes already outnumber the tree's {true_leaves} leaves (leaves that share an "
                   "answer take several boxes)")
        else:
            why = "how many leaves the tree has is unknown"
        return (f"{said}; {why}, so the budget that finishes it cannot be estimated: run again with a larger "
                f"one (e.g. --budget {2 * budget})")


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


_BOX_CHECKS = 2  # random inputs that test a box built with group tests
_GAP_HALVINGS = 8  # bisection steps past the attacker's values on a continuous feature


@dataclasses.dataclass
class _Seed:
    """An input to explore: its output id, positions known to lie outside its leaf
    (``hints[feature]``), and the box of the leaf it was reached from (None: not a neighbour)."""

    row: np.ndarray
    output_id: int
    hints: dict[int, float] = dataclasses.field(default_factory=dict)
    came_from: Box | None = None


class _PathFinder:
    """The exploration: a queue of seeds, one box per explored seed, then verification rounds.

    Features on a line (ordered ones, and categorical ones when ``ordinal``) are handled in
    positions: the value itself, or the index of a categorical code. A leaf's box is an
    interval of positions on each, bounded by cuts halfway between grid positions (integers,
    codes) or within ``tolerance`` of a continuous threshold. Three things keep the queries
    down. A tree reuses each threshold in many leaves, so cuts already found are tried before
    any bisection. A leaf shares the top of its path with the neighbour it was reached from,
    so the sides that neighbour's box leaves open are most likely open here too: they are
    tested in groups, since a leaf is a box and a move of several features that keeps the
    answer keeps it for each feature alone. And the seed's own side needs no test at all.
    """

    def __init__(
        self, oracle: _Oracle, domain: InputDomain, pool: np.ndarray, tolerance: float, ordinal: bool, infer_known: bool
    ):
        self.oracle = oracle
        self.infer_known = infer_known
        self.inferred = 0
        self.domain = domain
        self.model = BoxModel(domain, [], oracle.n_outputs)
        # Seeds that bring hints are explored first: they cost fewer queries, and once their
        # leaves are mapped, most other seeds are answered by the copy and skipped.
        self.seeds: collections.deque[_Seed] = collections.deque()
        self.plain_seeds: collections.deque[_Seed] = collections.deque()
        self.rounds = 0
        # Why run() stopped before two clean verification rounds: "budget" (the next probes did
        # not fit in it), "stalled" (a round's errors changed nothing), "" when it finished.
        self.stopped = ""
        features = domain.features
        self.on_line = [f.kind != CATEGORICAL or ordinal for f in features]
        self.grid = [f.kind != CONTINUOUS for f in features]
        # Half a grid step, or the continuous resolution: a cut c is confirmed by an input
        # inside the leaf at c - delta and one outside at c + delta.
        self.delta = [0.5 if g else tolerance * (f.upper - f.lower) for g, f in zip(self.grid, features)]
        self.ends = [(0.0, len(f.values) - 1.0) if f.kind == CATEGORICAL else (f.lower, f.upper) for f in features]
        self.cuts: list[set[float]] = [set() for _ in features]
        self.values = [np.unique(pool[:, i]) if f.kind == CONTINUOUS else None for i, f in enumerate(features)]
        self.pool = pool
        self.split_nominal: set[int] = set()  # unordered categorical features seen splitting a leaf
        self.checked_overlaps: set[tuple[int, int]] = set()
        self.origins: list[np.ndarray] = []  # the seed each box was explored from
        self.rng = np.random.default_rng(0)

    # -- the loop -----------------------------------------------------------------------
    def run(self, verify_batch: int, rng: np.random.Generator, clean_rounds: int = 2) -> bool:
        """Explore until ``clean_rounds`` verification batches in a row find no error (True),
        or the budget ends or stops paying off (False)."""
        pool_left = list(self.pool)
        self.rng = rng
        clean, repaired = 0, 0
        try:
            first = pool_left.pop(0)
            self._queue([_Seed(first, int(self.oracle.ask(first[None])[0]))])
            while clean < clean_rounds:
                explored = self._drain()
                if self.rounds and not clean and not explored and not repaired:
                    self.stopped = "stalled"
                    return False  # the last round's errors changed nothing: no progress to make
                remaining = self.oracle.target.ledger.remaining
                n = verify_batch if remaining is None else min(verify_batch, remaining)
                if n == 0:
                    self.stopped = "budget"
                    return False
                probes = self._verification_probes(pool_left, n, rng)
                conflicts = self._conflict_probes()
                if len(conflicts):
                    probes = np.concatenate([conflicts, probes])[:n]
                ids = self.oracle.ask(probes)
                self.rounds += 1
                wrong = self.model.predict_ids(probes) != ids
                clean = 0 if wrong.any() else clean + 1
                repaired = sum(self._correct(row, int(a)) for row, a in zip(probes[wrong], ids[wrong]))
            return True
        except _OutOfBudget:
            self.stopped = "budget"
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
        pool_rows = np.asarray(pool_left[:n_pool]).reshape(n_pool, self.domain.n_features)  # also when empty
        parts = inside + [pool_rows, self.domain.sample(rng, n - n_boxes - n_pool)]
        del pool_left[:n_pool]
        return np.concatenate(parts)

    def _conflict_probes(self) -> np.ndarray:
        """One input in each overlap of two boxes with different outputs not probed before: a
        tree's leaves do not overlap, so one of the two boxes is wrong there (it grew across
        leaves that share its output), and the answer tells which."""
        boxes, rows = self.model.boxes, []
        for j in range(len(boxes)):
            for k in range(j):
                if boxes[j].output_id == boxes[k].output_id or (j, k) in self.checked_overlaps:
                    continue
                overlap = _intersection(boxes[j], boxes[k], self.domain)
                if overlap is not None:
                    self.checked_overlaps.add((j, k))
                    rows.append(overlap.sample(self.domain, self.rng, 1))
        return np.concatenate(rows) if rows else np.zeros((0, self.domain.n_features))

    def _correct(self, row: np.ndarray, answer: int) -> int:
        """The copy answers ``row`` wrongly: shrink the boxes that hold it with another output,
        and if that does not settle it, queue it to explore the leaf it lies in. Returns the
        number of boxes shrunk."""
        holders = np.flatnonzero(self.model.misses(row[None])[0] == 0)
        boxes, shrunk = list(self.model.boxes), 0
        for k in holders:
            if boxes[k].output_id != answer:
                boxes[k], found = self._shrink(boxes[k], self.origins[k], row, answer)
                shrunk += not _same_box(boxes[k], self.model.boxes[k])
                self._queue(found)
        self.model = BoxModel(self.domain, boxes, self.oracle.n_outputs)
        if self.model.predict_ids(row[None])[0] != answer:
            self._queue([_Seed(row, answer)])
        return shrunk

    def _queue(self, seeds: list[_Seed]) -> None:
        for seed in seeds:
            (self.seeds if seed.hints else self.plain_seeds).append(seed)

    def _drain(self) -> int:
        """Explore every queued seed the copy does not yet answer correctly; return how many."""
        explored = 0
        while self.seeds or self.plain_seeds:
            seed = (self.seeds or self.plain_seeds).popleft()
            if len(self.model) and self.model.predict_ids(seed.row[None])[0] == seed.output_id:
                continue
            box, found = self._explore(seed)
            known = next((k for k, other in enumerate(self.model.boxes) if _same_box(box, other)), None)
            if known is not None:
                # A leaf already found, yet a box grown across leaves that share an output
                # answers for this seed: let the leaf found here win where they overlap.
                self.model.promote(known)
                explored += 1
                continue
            self.model.add(box)
            self.origins.append(seed.row)
            self._queue(found)
            explored += 1
        return explored

    # -- one leaf -------------------------------------------------------------------------
    def _explore(self, seed: _Seed) -> tuple[Box, list[_Seed]]:
        """The box of the leaf ``seed.row`` reaches, and the seeds seen in other leaves.

        Sides likely open are tested in groups. That is exact when leaves answer distinct
        outputs; a group move that lands in another leaf with the same output passes wrongly
        and grows the box across leaves, so a box built with groups is checked at random
        inputs inside it and shrunk where one answers otherwise.
        """
        x, o, hints, parent = seed.row, seed.output_id, seed.hints, seed.came_from
        features = self.domain.features
        pos = self._positions(x)
        searches: dict[tuple[int, int], tuple] = {}  # (feature, side) -> arguments of _boundary
        singles, groupable = [], []
        nominal_out = {i: {int(hints[i])} for i in hints if not self.on_line[i]}
        for i, f in enumerate(features):
            items = []
            if self.on_line[i]:
                for s, end in ((-1, self.ends[i][0]), (1, self.ends[i][1])):
                    if s * end <= s * pos[i]:
                        continue  # x sits at the end of the range on this side
                    if i in hints and s * hints[i] > s * pos[i]:
                        searches[(i, s)] = (s * pos[i], s * hints[i], None)  # the seed came from this side
                        continue
                    if parent is None:
                        bound, suspect = None, any(s * pos[i] < s * c < s * end for c in self.cuts[i])
                    else:
                        bound = _side_cut(parent, i, s, f)
                        suspect = bound is not None and s * bound > s * pos[i]
                    if suspect:
                        searches[(i, s)] = (s * pos[i], None, None if bound is None else s * bound)
                    else:
                        items.append((i, end))
            else:
                if parent is not None:
                    suspect = set(np.flatnonzero(~parent.masks[i]))
                else:
                    suspect = set(range(len(f.values))) if i in self.split_nominal else set()
                for k in range(len(f.values)):
                    if k != pos[i] and k not in nominal_out.get(i, ()):
                        (singles if k in suspect else items).append((i, float(k)))
            groupable.append(items)
        # Sides no known threshold guards are tested together: a leaf is a box, so if moving
        # several features at once keeps the answer, each move alone keeps it too.
        width = max(map(len, groupable), default=0)
        layers = [[items[k] for items in groupable if len(items) > k] for k in range(width)]
        tests = [self._outside_items([item], o) for item in singles] + [self._outside_items(g, o) for g in layers]
        box = Box(np.full(len(features), -np.inf), np.full(len(features), np.inf),
                  {i: np.ones(len(f.values), dtype=bool) for i, f in enumerate(features) if f.kind == CATEGORICAL},
                  self.oracle.rows[o], o)
        box, found = self._bound(box, x, tests, searches, nominal_out)
        if any(len(layer) > 1 for layer in layers):
            checks = box.sample(self.domain, self.rng, _BOX_CHECKS)
            for row, a in zip(checks, self._answers(checks, o)):
                if a != o and self._holds(box, row):
                    box, more = self._shrink(box, x, row, int(a))
                    found += more
        return box, found

    def _shrink(self, box: Box, x: np.ndarray, row: np.ndarray, answer: int) -> tuple[Box, list[_Seed]]:
        """``box``, explored from ``x``, holds ``row`` that answers otherwise: find the features whose
        move from ``x`` to ``row`` alone leaves the leaf (group tests; ``row`` itself is known to
        leave) and bound those sides."""
        pos, target = self._positions(x), self._positions(row)
        items = [(i, target[i]) for i in range(len(pos)) if target[i] != pos[i]]
        if not items:
            return box, []
        return self._bound(box, x, [self._outside_items(items, box.output_id, known_out=True)], {}, {})

    def _holds(self, box: Box, row: np.ndarray) -> bool:
        return bool(BoxModel(self.domain, [box], self.oracle.n_outputs).misses(row[None])[0, 0] == 0)

    def _bound(self, box: Box, x: np.ndarray, tests: list, searches: dict, nominal_out: dict):
        """Run the group ``tests`` from ``x``, then a cut search on each side found bounded (and on
        the ``searches`` given); return ``box`` narrowed to the cuts, and seeds for other leaves."""
        o, features = box.output_id, self.domain.features
        pos = self._positions(x)
        log: list[tuple[dict[int, float], np.ndarray, int]] = []
        nominal_out = {i: set(v) for i, v in nominal_out.items()}
        for out in self._lockstep(x, o, tests, log):
            for i, p in out:
                if self.on_line[i]:
                    s = 1 if p > pos[i] else -1
                    searches[(i, s)] = (s * pos[i], s * p, None)
                else:
                    nominal_out.setdefault(i, set()).add(int(p))
        keys = list(searches)
        results = self._lockstep(x, o, [self._boundary(i, s, *searches[(i, s)], o) for i, s in keys], log)

        lower, upper = box.lower.copy(), box.upper.copy()
        masks = {i: m.copy() for i, m in box.masks.items()}
        inside_limit: dict[tuple[int, int], float] = {}
        for (i, s), (inside, cut) in zip(keys, results):
            inside_limit[(i, s)] = s * inside
            if cut is None:
                continue  # the leaf reaches the end of the range on this side
            self.cuts[i].add(s * cut)
            if features[i].kind == CATEGORICAL:
                codes = np.arange(len(features[i].values))
                masks[i] &= (codes < s * cut) if s > 0 else (codes > s * cut)
            elif s > 0:
                upper[i] = min(upper[i], s * cut)
            else:
                lower[i] = max(lower[i], s * cut)
        for i, out in nominal_out.items():
            masks[i][sorted(out)] = False
            if out:
                self.split_nominal.add(i)
        box = Box(lower, upper, masks, box.output, o, box.priority)

        found = []
        for moves, row, a in log:
            if a == o:
                continue
            hints = {}
            if len(moves) == 1:
                # x itself, or x moved as far as it stays in this leaf, lies outside the seed's leaf.
                ((i, p),) = moves.items()
                hints[i] = inside_limit.get((i, 1 if p > pos[i] else -1), pos[i]) if self.on_line[i] else pos[i]
            found.append(_Seed(row, a, hints, box))
        return box, found

    def _outside_items(self, items: list[tuple[int, float]], o: int, known_out: bool = False):
        """The (feature, position) items whose move alone leaves the leaf: adaptive group
        testing (a group that keeps the answer is all inside; one that does not is halved)."""
        # A group known to leave is split without asking again. A single move is always asked:
        # "the other half stayed" may be a move into another leaf that answers the same.
        if not known_out or len(items) == 1:
            answer = yield dict(items)
            if answer == o:
                return []
            if len(items) == 1:
                return items
        half = len(items) // 2
        first = yield from self._outside_items(items[:half], o)
        return first + (yield from self._outside_items(items[half:], o, known_out=not first))

    def _boundary(self, i: int, s: int, a: float, b: float | None, first: float | None, o: int):
        """Find the leaf's cut on one side of feature ``i``. Positions are signed by ``s`` so that
        outward is up: ``a`` is inside the leaf, ``b`` outside (None: not known to be bounded),
        ``first`` a cut to try before the others. Returns (last inside, cut or None: unbounded)."""
        end = s * self.ends[i][0 if s < 0 else 1]
        while True:
            known = sorted(s * c for c in self.cuts[i] if a < s * c and (b is None or s * c < b))
            if first is not None and first in known:
                known.remove(first)
                known.insert(0, first)
            if b is not None:
                confirmed = [c for c in known if a >= self._near(i, s, c, -1) and b <= self._near(i, s, c, 1)]
                if confirmed:
                    return a, confirmed[0]
                if self._settled(i, s, a, b):
                    return a, (a + b) / 2
            if known and (b is not None or first is not None):
                # The neighbour's cut, else the nearest known one: test just beyond it, then just before.
                beyond = self._near(i, s, known[0], 1)
                probe = beyond if b is None or beyond < b else self._near(i, s, known[0], -1)
            elif b is None:
                probe = end  # does the leaf reach the end of the range?
            else:
                probe = self._split(i, s, a, b)
            answer = yield {i: s * probe}
            if answer == o:
                a = probe
                if probe == end:
                    return a, None
            else:
                b = probe

    # A continuous feature is searched over the attacker's own values first (a threshold lies
    # between two values the data take, and the copy is used on such data), then in value to
    # the tolerance. ``stops`` are those values, signed so that outward is up.
    def _stops(self, i: int, s: int) -> np.ndarray:
        values = self.values[i]
        return values if s > 0 else -values[::-1]

    def _settled(self, i: int, s: int, a: float, b: float) -> bool:
        """Whether the signed bracket (a inside, b outside) pins the cut down."""
        if self.grid[i]:
            return b - a <= 1
        stops = self._stops(i, s)
        below, above = np.searchsorted(stops, a, side="right"), np.searchsorted(stops, b)
        if above > below:
            return False  # attacker values lie in between
        # Within a gap of the attacker's values, a few more halvings: test inputs fall in such a
        # gap about as often as the attacker's do, once per gap, so each halving halves the errors.
        gap = (stops[above] if above < len(stops) else b) - (stops[below - 1] if below else a)
        return b - a <= min(self.delta[i], gap / 2**_GAP_HALVINGS)

    def _split(self, i: int, s: int, a: float, b: float) -> float:
        """The next probe inside an unsettled signed bracket."""
        if self.grid[i]:
            return float(np.floor((a + b) / 2))
        stops = self._stops(i, s)
        lo, hi = np.searchsorted(stops, a, side="right"), np.searchsorted(stops, b)
        return float(stops[(lo + hi) // 2]) if hi > lo else (a + b) / 2

    def _near(self, i: int, s: int, c: float, direction: int) -> float:
        """The signed position just inside (``direction`` -1) or just beyond (+1) the signed cut
        ``c``: the next grid position, or the nearer of the tolerance and the next attacker value."""
        if self.grid[i]:
            return c + 0.5 * direction
        stops = self._stops(i, s)
        if direction > 0:
            k = np.searchsorted(stops, c, side="right")
            return min(c + self.delta[i], float(stops[k])) if k < len(stops) else c + self.delta[i]
        k = np.searchsorted(stops, c) - 1
        return max(c - self.delta[i], float(stops[k])) if k >= 0 else c - self.delta[i]

    def _lockstep(self, x: np.ndarray, o: int, searches: list, log: list) -> list:
        """Run generator searches side by side, one batch of probes per step. A search yields
        {feature: position} moves of ``x`` and receives the answer's id; its return value is
        collected. Every probe is appended to ``log`` as (moves, row, id)."""
        results: list = [None] * len(searches)
        waiting: dict[int, dict[int, float]] = {}

        def advance(k, answer):
            try:
                waiting[k] = searches[k].send(answer)
            except StopIteration as stop:
                results[k] = stop.value

        for k in range(len(searches)):
            advance(k, None)
        while waiting:
            keys = list(waiting)
            rows = np.stack([self._moved(x, waiting[k]) for k in keys])
            ids = self._answers(rows, o)
            for k, row, a in zip(keys, rows, ids):
                log.append((waiting.pop(k), row, int(a)))
                advance(k, int(a))
        return results

    def _positions(self, x: np.ndarray) -> np.ndarray:
        pos = np.asarray(x, dtype=np.float64).copy()
        for i, f in enumerate(self.domain.features):
            if f.kind == CATEGORICAL:
                pos[i] = float(np.abs(np.asarray(f.values) - x[i]).argmin())
        return pos

    def _moved(self, x: np.ndarray, moves: dict[int, float]) -> np.ndarray:
        row = x.copy()
        for i, p in moves.items():
            f = self.domain.features[i]
            row[i] = f.values[int(p)] if f.kind == CATEGORICAL else p
        return row

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


def _side_cut(box: Box, i: int, s: int, feature) -> float | None:
    """The position where ``box`` ends on side ``s`` of feature ``i``, or None if it reaches the end."""
    if feature.kind == CATEGORICAL:
        inside = np.flatnonzero(box.masks[i])
        edge = inside[-1] if s > 0 else inside[0]
        last = len(feature.values) - 1
        if (s > 0 and edge == last) or (s < 0 and edge == 0):
            return None
        return edge + 0.5 * s
    cut = box.upper[i] if s > 0 else box.lower[i]
    return None if np.isinf(cut) else float(cut)


def _intersection(a: Box, b: Box, domain: InputDomain) -> Box | None:
    """The part of the domain inside both boxes, or None if there is none."""
    lower, upper = np.maximum(a.lower, b.lower), np.minimum(a.upper, b.upper)
    masks = {i: a.masks[i] & b.masks[i] for i in a.masks}
    for i, f in enumerate(domain.features):
        if f.kind == CATEGORICAL:
            if not masks[i].any():
                return None
            continue
        lo, hi = max(lower[i], f.lower), min(upper[i], f.upper)
        if (np.ceil(lo) > np.floor(hi)) if f.kind == INTEGER else lo > hi:
            return None
    return Box(lower, upper, masks, a.output, a.output_id)


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
    estimator = target.sklearn_estimator()
    tree = getattr(estimator, "tree_", None)
    return None if tree is None else int(tree.n_leaves)
