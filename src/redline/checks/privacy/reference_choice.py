"""Which reference models a membership attack trains: the target's recipe, a family the
auditor names, or the candidate family whose behaviour matches the target's best.

Matching uses only what the auditor sees, and costs the target no queries beyond the ones
the attack makes anyway: the target's answers on the evaluated records, of which the
members (``x_train``) and non-members (``x_test``) are known. One model of each candidate
family trains on population rows (``x_pool``) as many as the target trained on, and is
compared with the target three ways:

* ``agreement``: the share of non-member records on which its top class is the target's;
* ``ks_members``: the Kolmogorov-Smirnov distance between the target's logit-scaled
  confidences on its members and the candidate's on its own training rows (how hard each
  memorised: training length, capacity);
* ``ks_nonmembers``: the same distance on the non-member records (how each generalises
  and how confident it is on unseen rows; tied leaf scores of trees show here).

``match = agreement - (ks_members + ks_nonmembers) / 2``, at most 1. One model per family
is a noisy screen, and whole distributions can match while the records a family finds hard
are not the target's (on the bench's held-out MNIST CNN an MLP family out-matched the CNN
family, 0.79 to 0.74, on one machine and not on another; its references gave LiRA a TPR at
1% FPR of 0.019 where the CNN family's gave 0.05). So the best family and the best of
another kind then go to a *trial*: each trains ``TRIAL_MODELS`` online reference models (on
the evaluated records, topped up with population rows as LiRA's are), and the one whose
references better predict the target's own logit-scaled confidence on each record, given
whether the record is a member, trains the reference models. Prediction is scored by the
continuous ranked probability score (CRPS) of each record's value under its side's
Gaussian, with one variance per side or each record's own, whichever scores better (LiRA
later makes its own choice, by the mean), and the median over records decides. The median, because families
miss on different scales: a forest's references that vote unanimously put a record's
logit-scaled confidence at about +-700 (the floor of a probability of 0 or 1), so one
tie the target breaks is a miss of hundreds where a network's misses are of one or two,
and a mean let a few such records hand the tests' RAND survey forest to an MLP family
(LiRA 0.065 at 1% FPR with it against 0.175 with forest references). The median CRPS is
not a proper score: it is lowest for a Gaussian about 0.8 as wide as the truth (a median
log-likelihood, tried first, for one 0.67 as wide, and it preferred over-confident
references). Offline on the bench's targets with 32 references per family it ranked the
families as LiRA's power does on the held-out MNIST CNN (CNN family 1.18, MLP families
1.47 and 1.50), the held-out boosted trees (boosted trees of 450 rounds 0.83, MLP 1.58,
fewer rounds 1.89, forest 2.82) and the tuning digits MLP (MLP 0.76, CNN 6.01); on the
tuning forest it prefers a forest (0.38) to boosted trees (0.45), as the screen does,
though LiRA finds more members with the trees (0.124 at 1% FPR against 0.094).

The trial asks how well a family *models* the target, record by record, not how well an
attack with it separates members: on a model that leaks nothing the members' and
non-members' answers are alike and no family can make them differ. Choosing one of two
still uses the membership of the records, a mild selection the module's benchmark measures
on private twins. It costs 16 reference models (for a CNN finalist on 1,000 MNIST images,
about a minute and a half on two cores), paid once per set of records and target answers:
the checks of one scan share the plan.

The chosen finalist's trial models are kept with the plan (:class:`TrialModels`): they are
online reference models trained on the very records the attack scores, so an online attack
takes them as references on top of the ones it trains itself, at no further cost (on the
held-out CNN LiRA then has 16 references for the price of 8, RMIA 12 for 4). A replay in a
new process trains the same trial again: it is seeded by the fingerprint.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...errors import UsageError
from .membership import (
    MIN_RECORDS,
    Records,
    crps_by_variance,
    logit_confidence,
    online_universe,
    require_pool,
    target_train_size,
)
from .reference_families import (
    Family,
    candidate_families,
    length_variants,
    parse_family,
)

#: The ``reference`` values that are not family names.
SOURCES = ("auto", "recipe", "surrogate")
#: Online reference models each of the two finalist families trains in the trial (four
#: complementary pairs: with as many evaluated records as two training sets, each record is
#: in four of them and out of four; records that end up on one side only are not scored).
TRIAL_MODELS = 8


@dataclasses.dataclass(frozen=True)
class CandidateMatch:
    """How well one candidate family resembles the target."""

    family: str
    agreement: float
    ks_members: float
    ks_nonmembers: float
    seconds: float
    rank_correlation: float = 0.0

    @property
    def match(self) -> float:
        return self.agreement - 0.5 * (self.ks_members + self.ks_nonmembers)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "match": round(self.match, 4), "agreement": round(self.agreement, 4),
                "ks_members": round(self.ks_members, 4), "ks_nonmembers": round(self.ks_nonmembers, 4),
                "rank_correlation": round(self.rank_correlation, 4),
                "seconds": round(self.seconds, 2)}


@dataclasses.dataclass
class ReferencePlan:
    """Where reference models come from: ``source`` is 'recipe', 'surrogate' or 'family',
    with the family when it is one, and how it was chosen."""

    source: str
    family: Family | None = None
    how: str = ""  # "named" (by the user) or "matched" (chosen by matching, then the trial)
    candidates: list[CandidateMatch] = dataclasses.field(default_factory=list)
    trial: list[TrialFit] = dataclasses.field(default_factory=list)
    trial_models: TrialModels | None = None  # the chosen finalist's trial references, reused online

    def evidence(self) -> dict[str, Any]:
        """What a finding reports about the choice (evidence ``reference_family``)."""
        if self.family is None:
            return {"chosen": self.source, "how": "recipe" if self.source == "recipe" else "default surrogate",
                    "candidates": []}
        said = {"chosen": self.family.name, "how": self.how, "candidates": [c.to_dict() for c in self.candidates]}
        return {**said, "trial": [t.to_dict() for t in self.trial]} if self.trial else said

    def describe(self) -> str:
        if self.family is None:
            if self.source == "recipe":
                return "the target's training recipe"
            if self.how == "no pool":
                return (f"the default surrogate: a family is chosen on population data (x_pool) of at least "
                        f"{2 * MIN_RECORDS} rows and there is none this large")
            return "the default surrogate"
        if self.how == "named":
            return f"family {self.family.name} (named)"
        chosen = next(c for c in self.candidates if c.family == self.family.name)
        runner = sorted((c for c in self.candidates if c is not chosen), key=lambda c: -c.match)[:1]
        tail = f"; next {runner[0].family} {runner[0].match:.2f}" if runner else ""
        said = (f"family {self.family.name}, matched to the target (match {chosen.match:.2f}: agreement "
                f"{chosen.agreement:.2f}, KS members {chosen.ks_members:.2f}, non-members {chosen.ks_nonmembers:.2f}{tail})")
        if len(self.trial) == 2:
            won, lost = sorted(self.trial, key=lambda t: t.family != self.family.name)
            said += (f", then tried against {lost.family} with {won.models} references each: median CRPS of the "
                     f"target's answers {won.crps:.3f} against {lost.crps:.3f}, lower is closer")
        return said


def validate_reference(reference: str) -> None:
    """A clear error for a ``reference`` value that is neither a source nor a family name."""
    if reference not in SOURCES:
        parse_family(reference)


def plan_references(target: Any, data: Any, records: Records, target_probs: np.ndarray, reference: str,
                    candidates: list[Family] | None = None) -> ReferencePlan:
    """Decide where the reference models come from (module docstring).

    ``reference``: 'recipe' (the target's own training function), 'surrogate' (the fixed
    default architecture for the data), a family name (``mlp-512x256@60``, ``gbt@300``...), or
    'auto': the recipe when the target has one, else the best-matching candidate family
    (needs ``x_pool``; without one, the default surrogate). ``target_probs`` are the target's
    answers on ``records``.
    """
    if reference in ("recipe", "surrogate"):
        return ReferencePlan(reference)
    if reference != "auto":
        family = parse_family(reference)
        why = family.fits(records.x.shape[1:], data.modality)
        if why:
            raise UsageError(f"reference family {family.name}: {why}")
        return ReferencePlan("family", family, "named")
    if target.capabilities.trainable and getattr(target, "trainer", None) is not None:
        return ReferencePlan("recipe")
    if data.x_pool is None or len(data.x_pool) < 2 * MIN_RECORDS:  # too few rows to screen families on
        return ReferencePlan("surrogate", how="no pool")
    candidates = candidates if candidates is not None else candidate_families(records.x.shape[1:], data.modality)
    # The choice depends only on the data, the set of evaluated records and the target's
    # answers (not on the check's own random stream nor on the records' order), so checks of
    # one scan share it and a replayed check finds the same.
    key = _fingerprint(data, records, target_probs, candidates)
    if key in _CHOSEN:
        return _CHOSEN[key]
    own = np.random.default_rng(int.from_bytes(bytes.fromhex(key[:16]), "big"))
    seed, rows = int(own.integers(2**31)), _candidate_rows(data, own)
    matches = match_candidates(candidates, data, records, target_probs, rows, n_classes=target_probs.shape[1],
                               seed=seed)
    # Then how long: the two best kinds' architectures trained shorter and longer.
    ranked = sorted(range(len(matches)), key=lambda i: -matches[i].match)
    leaders = [candidates[i] for i in ranked if candidates[i].kind != candidates[ranked[0]].kind][:1]
    longer_or_shorter = [v for family in (candidates[ranked[0]], *leaders) for v in length_variants(family)]
    if longer_or_shorter:
        candidates = [*candidates, *longer_or_shorter]
        matches += match_candidates(longer_or_shorter, data, records, target_probs, rows,
                                    n_classes=target_probs.shape[1], seed=seed)
    ranked = sorted(range(len(matches)), key=lambda i: -matches[i].match)
    finalists = [candidates[ranked[0]]] + [candidates[i] for i in ranked if candidates[i].kind != candidates[ranked[0]].kind][:1]
    chosen, trial = finalists[0], []
    if len(finalists) == 2 and records.is_member.any() and (~records.is_member).any():
        kept: list[TrialModels] = []
        trial = try_finalists(finalists, data, records, target_probs, n_classes=target_probs.shape[1], rng=own,
                              keep=kept)
        best = min(range(len(trial)), key=lambda i: trial[i].crps)
        chosen, trial_models = finalists[best], kept[best]
    else:
        trial_models = None
    if len(_CHOSEN) >= 16:
        _CHOSEN.clear()
    _CHOSEN[key] = ReferencePlan("family", chosen, "matched", matches, trial, trial_models)
    return _CHOSEN[key]


@dataclasses.dataclass(frozen=True)
class TrialModels:
    """One finalist's trial models, trained online on the evaluated records (in their
    canonical order) topped up with the pool rows ``top_up``: ``plan`` is (models, records +
    top-up rows). ``record_keys`` identify the records by content (row, label, membership),
    so a check that draws the same records in another order finds its columns."""

    family: str
    models: Any  # ReferenceModels
    plan: np.ndarray
    top_up: np.ndarray
    record_keys: tuple[bytes, ...]

    @property
    def n_models(self) -> int:
        return int(self.plan.shape[0])

    def columns_for(self, records: Records) -> np.ndarray | None:
        """For each of ``records``, its column in ``plan``; None unless they are exactly the
        records the trial trained on."""
        if len(records) != len(self.record_keys):
            return None
        free: dict[bytes, list[int]] = {}
        for column, key in enumerate(self.record_keys):
            free.setdefault(key, []).append(column)
        columns = []
        for key in record_keys(records):
            if not free.get(key):
                return None
            columns.append(free[key].pop())
        return np.asarray(columns, dtype=np.int64)


def record_keys(records: Records) -> list[bytes]:
    """A digest of each record's content: its row, label and membership."""
    import hashlib

    return [hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.asarray([y, member], np.int64).tobytes()).digest()
            for x, y, member in zip(records.x, records.y, records.is_member)]


@dataclasses.dataclass(frozen=True)
class TrialFit:
    """How well one finalist family's online references predict the target's answers."""

    family: str
    crps: float  # median over records of the CRPS of the target's statistic (lower is better)
    variance: str  # "fixed" or "per-record": the one with the lower median CRPS
    models: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "median_crps": round(self.crps, 4), "variance": self.variance,
                "models": self.models, "seconds": round(self.seconds, 2)}


def try_finalists(finalists: list[Family], data: Any, records: Records, target_probs: np.ndarray, *,
                  n_classes: int, rng: np.random.Generator, keep: list | None = None) -> list[TrialFit]:
    """Train ``TRIAL_MODELS`` online references of each finalist on the same training sets and
    score how well each predicts the target (module docstring). The records are first put in
    an order of their own content, so that the training sets, like the cache key, depend on
    which records are evaluated and not on the order a check drew them in. ``keep``, when
    given, receives each finalist's :class:`TrialModels`."""
    import time

    from ...util.reference_models import online_plan

    order = canonical_order(records, target_probs)
    records = Records(records.x[order], records.y[order], records.is_member[order])
    target_probs = target_probs[order]
    universe_x, universe_y, top_up = online_universe(data, records, rng)
    plan = online_plan(len(universe_x), TRIAL_MODELS, target_train_size(data), rng)
    keys = tuple(record_keys(records)) if keep is not None else ()
    seed = int(rng.integers(2**31))
    in_mask = plan[:, : len(records)]
    target_stat = logit_confidence(target_probs, records.y)
    out = []
    for family in finalists:
        start = time.perf_counter()
        models = family.train(universe_x, universe_y, plan, n_classes=n_classes, modality=data.modality, seed=seed)
        stat = logit_confidence(models.predict_proba(records.x), records.y)
        crps, variance = predictive_fit(target_stat, stat, in_mask, records.is_member)
        out.append(TrialFit(family.name, crps, variance, TRIAL_MODELS, time.perf_counter() - start))
        if keep is not None:
            keep.append(TrialModels(family.name, models, plan, top_up, keys))
    return out


def canonical_order(records: Records, target_probs: np.ndarray) -> np.ndarray:
    """An order of the records that depends only on each record's content (its row, label,
    membership and the target's answer): a stable sort of their digests."""
    import hashlib

    digests = [
        hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.asarray([y, member], np.int64).tobytes()
                       + np.ascontiguousarray(p, dtype=np.float64).tobytes()).digest()
        for x, y, member, p in zip(records.x, records.y, records.is_member, target_probs)
    ]
    return np.asarray(sorted(range(len(digests)), key=digests.__getitem__), dtype=np.int64)


def predictive_fit(target_stat: np.ndarray, ref_stat: np.ndarray, in_mask: np.ndarray,
                   is_member: np.ndarray) -> tuple[float, str]:
    """(median CRPS, variance): how well references predict the target's statistic record by
    record. Each record's value is scored under a Gaussian with the references' mean for
    the record on the record's side (member: IN, non-member: OUT) by the continuous ranked
    probability score, and the median over records taken (lower is better; the module
    docstring says why the median), with one standard deviation per side or each record's
    own, whichever scores better by that median. Records that no reference has in, or none out, are left
    out; a reference that answers NaN makes the fit infinitely bad."""
    covered = in_mask.any(axis=0) & (~in_mask).any(axis=0)
    if not covered.any():
        return float("inf"), "fixed"
    scores = crps_by_variance(target_stat[covered], ref_stat[:, covered], in_mask[:, covered], is_member[covered],
                              True, np.median)
    fixed = scores[True] <= scores[False]
    return scores[fixed], "fixed" if fixed else "per-record"


# Plans already chosen in this process, by fingerprint.
_CHOSEN: dict[str, ReferencePlan] = {}


def _fingerprint(data: Any, records: Records, target_probs: np.ndarray, candidates: list[Family]) -> str:
    """A digest of what the choice depends on: the pool, the target's training-set size, the
    candidates, and the target's answers on members and on non-members (each as a sorted
    set of rows, so the order records were drawn in does not matter)."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(repr((target_train_size(data), [f.name for f in candidates], data.modality)).encode())
    digest.update(np.ascontiguousarray(data.x_pool).tobytes())
    digest.update(np.ascontiguousarray(data.y_pool).tobytes())
    for side in (records.is_member, ~records.is_member):
        rows = np.column_stack([target_probs[side], records.y[side]]).astype(np.float64)
        digest.update(np.ascontiguousarray(rows[np.lexsort(rows.T[::-1])]).tobytes())
    return digest.hexdigest()


def _candidate_rows(data: Any, rng: np.random.Generator) -> np.ndarray:
    """The population rows every candidate trains on, as a one-model plan: as many as the
    target trained on, at most half the pool (the other half stays unseen)."""
    pool_x, _ = require_pool(data, "choosing reference models by matching the target")
    size = min(target_train_size(data), len(pool_x) // 2)
    rows = np.zeros((1, len(pool_x)), dtype=bool)
    rows[0, rng.choice(len(pool_x), size=size, replace=False)] = True
    return rows


def match_candidates(candidates: list[Family], data: Any, records: Records, target_probs: np.ndarray,
                     rows: np.ndarray, *, n_classes: int, seed: int) -> list[CandidateMatch]:
    """One :class:`CandidateMatch` per family, each trained on the population rows ``rows``
    (a one-model plan over ``x_pool``)."""
    import time

    from scipy.stats import ks_2samp, spearmanr

    pool_x, pool_y = require_pool(data, "choosing reference models by matching the target")
    members, outsiders = records.is_member, ~records.is_member
    t_out = target_probs[outsiders]
    t_member_stat = logit_confidence(target_probs[members], records.y[members])
    t_out_stat = logit_confidence(t_out, records.y[outsiders])
    out = []
    for family in candidates:
        start = time.perf_counter()
        model = family.train(pool_x, pool_y, rows, n_classes=n_classes, modality=data.modality, seed=seed)
        own = model.predict_proba(pool_x[rows[0]])[0]
        unseen = model.predict_proba(records.x[outsiders])[0]
        out.append(CandidateMatch(
            family.name,
            agreement=float(np.mean(unseen.argmax(1) == t_out.argmax(1))),
            ks_members=float(ks_2samp(t_member_stat, logit_confidence(own, pool_y[rows[0]])).statistic),
            ks_nonmembers=float(ks_2samp(t_out_stat, logit_confidence(unseen, records.y[outsiders])).statistic),
            seconds=time.perf_counter() - start,
            rank_correlation=float(spearmanr(t_out_stat, logit_confidence(unseen, records.y[outsiders])).statistic),
        ))
    return out
