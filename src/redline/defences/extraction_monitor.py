"""Detection of model stealing per account, with lock-out: PRADA's distance test, a row budget and
an out-of-domain test.

A thief that trains a copy of the model needs many answers, and its queries are chosen to
teach the copy, not to use the model. Three tests look at an account's traffic, each optional:

* **PRADA** (Juuti et al., 2019). For each new query, the distance (L2, features scaled to
  [0, 1] by the input's bounds) to the nearest earlier query of the account that the model
  put in the same class; the query joins that class's "growing set" when it is farther than
  the set's threshold (the mean minus one standard deviation of the distances that grew the
  set). Honest inputs, drawn from a natural distribution, give minimum distances that look
  normally distributed; queries synthesised by small steps from a few owned inputs
  (Papernot et al.'s Jacobian augmentation) pile up at a few small distances and do not.
  Once the account has ``min_queries`` distances, a Shapiro-Wilk statistic W below
  ``shapiro_below`` over the last ``window`` of them flags the query. The default 0.75 sits
  under the least W of honest calibration clients (test role, benchmarks/bench_guard_detection.py:
  0.91 on digits and MNIST, 0.81 on MNIST for clients that re-send inputs under a fresh
  corruption); Jacobian augmentation from 10 seeds gives 0.35-0.7 at 100 distances. It does
  not see stealing from natural inputs, nor uniform noise (its distances concentrate and look
  normal, W 0.98), nor redline's FM05.learning (pool rows with 20% blends: W 0.92-0.99).
  The bar was set on images: honest clients of a table can sit under it (breast cancer: least
  W 0.66-0.70, 2-6 of 100 locked out), so a table's policy sets it from its own clients.
* **A budget of distinct rows** (``max_rows`` within ``memory_s`` seconds of the account's
  first row). Stealing from natural inputs (KnockoffNets on the model's own kind of data)
  sends exactly what honest clients send; only its volume tells it apart. Unlike
  ``rate_limit``'s ``rows_per_day``, the budget does not renew every day, counts distinct
  rows (a retry is free) and ends in a lock-out with an audit record. Its value is a policy
  decision: the most distinct rows an honest account is expected to send in ``memory_s``.

* **Out of domain** (``reference``, a DATA spec of in-domain inputs: ``npz:ref.npz``,
  ``builtin:NAME``, a path to an ``.npz``; resolved in :meth:`ExtractionMonitor.check`).
  The thief of KnockoffNets (Orekondy et al., 2019) steals because it has no data of the
  model's domain: it queries a large natural-image transfer set of another domain, which an
  honest client of the model has no reason to send. Each distinct row is scored by its
  distance to the 3rd nearest reference row, in a layout that the common corruptions of
  honest inputs barely move (images block-averaged to at most 8x8 cells, centred and
  scaled to unit length; tables standardised; :mod:`~redline.defences.domain`; a model that
  takes an image as a flat vector names its layout, ``domain_layout: [1, 8, 8]``, or its
  pixels would be scored as table columns, where noise and blur do move them), and called
  *outside* above the ``domain_quantile`` of cross-fitted scores of held-in reference rows,
  clean and corrupted (so about 1% of in-domain rows are outside). The account is flagged
  when a sequential test rejects "at most ``domain_share`` of its rows are outside" at level
  ``domain_alpha`` (a mixture likelihood ratio, valid however often it is tested: an honest
  account whose share stays under ``domain_share`` is flagged with probability at most
  ``domain_alpha`` over its whole life), after at least ``domain_min_rows`` distinct rows
  (with the defaults, 10 outside rows of the first 20, 22 of 100, 96 of 1000; a client with
  a few odd inputs is never flagged). The test reads inputs only, so it decides *before* the
  model answers: the batch that tips it is refused. benchmarks/bench_guard_stealing.py
  measures it: KnockoffNets from photo patches (also inverted to a dark background), from
  the other built-in digit set or from noise, random and adaptive, was locked out at row 20
  on the digits MLP and the MNIST CNN (photo rows 100% outside); held-out honest rows are
  outside 0.5-0.9% of the time, and none of 800 varied honest clients was flagged. It does
  not see stealing with in-domain data (KnockoffNets on the model's own kind of inputs,
  FM05.learning: only the budget bounds those), nor a thief whose transfer set lies close
  to the domain, nor one that mixes in enough in-domain rows to keep its outside share near
  ``domain_share`` (photos diluted to 10% among in-domain rows reached the budget first),
  or that spreads its rows over accounts. The reference must cover what honest clients
  send: digits from another source (MNIST at 8x8 for the 8x8 digits model) are outside.

None of the tests sees a thief that spreads its natural, in-domain queries over many
accounts, each below the budget; and PRADA needs ``min_queries`` answers before it can say
anything. ``lockout_after`` flags lock the account out for ``lockout_s`` seconds
(:class:`~redline.defences.base.LockedOut`, HTTP 403, from the next request on: PRADA
needs the model's answer, so it decides after answering).

State per account lives in the :class:`~redline.defences.state.StateStore` handed to
:meth:`ExtractionMonitor.for_client` (keys ``extraction_monitor:<client>:...``): the growing
sets as lists of 8-bit quantised rows (at most ``growing`` per class), the last ``window``
distances (one float32 blob, appended to atomically), running sums per class, with
``max_rows`` the row count and digests of the rows seen (so exact repeats are not budget;
PRADA keeps its own digests), and the out-of-domain test's two counters (distinct
informative rows scored, rows outside; kept after a flag, so once a lock-out expires the
next outside row locks the account again).
Blank images (one value everywhere) are no evidence either way; rows with NaN or infinite
values are outside; a row within ``near_`` (half the 5th percentile of the reference rows'
distances to their nearest other row, in the layout) of one of the account's last 512
evidence rows is a near-copy and counts no more (those rows are kept as one blob of float16
layouts per account, at most 64 KB for 8x8 layouts; reading and writing it raised a 1-row
request's cost on SQLite from 0.5 to 1.4 ms, a 256-row one from 3.7 to 5.6 ms). The counters are added to before they are read, so workers that serve
one account at once each test totals that include their own rows. Workers may still each
read the growing set before the other adds to it; PRADA is statistical, so such a race
changes a distance, not the decision's basis.
"""
from __future__ import annotations

import functools
import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, InputRejected, emit
from .lockout import lock_out, refuse_if_locked_out
from .reference import reference_rows
from .state import MemoryState, StateStore

if TYPE_CHECKING:
    from .domain import DomainScorer

#: Distance of a blank input to any reference row in the image layout (unit vectors): a
#: calibrated threshold at or above it calls nothing outside.
_FLAT_DISTANCE = 1.0
#: Distinct rows per account that later rows are compared with for near-copies.
_NEAR_MEMORY = 512
#: Most reference rows the out-of-domain test keeps (calibration memory grows as its square).
_MOST_REFERENCE = 20_000
#: Fitted out-of-domain scorers kept for reuse across policy reloads, by reference and settings.
_CALIBRATED: dict[tuple, Any] = {}
_CALIBRATED_LOCK = threading.Lock()
_MOST_CALIBRATED = 8


class ExtractionMonitor(Defence):
    """Flag an account whose queries look like model stealing (PRADA, a row budget, inputs out of
    the model's domain); lock it out."""

    name = "extraction_monitor"
    policy_key = "extraction_monitor"
    #: Wall clock for the lock-out deadline a refusal reports (tests replace it).
    clock = staticmethod(time.time)

    def __init__(self, shapiro_below: float | None = 0.75, min_queries: int = 100, window: int = 1000,
                 growing: int = 1000, max_rows: int | None = None, lockout_after: int = 1,
                 lockout_s: float = 3600.0, memory_s: float = 30 * 86400.0, reference: str | None = None,
                 max_reference: int = 2000, domain_quantile: float = 0.99, domain_share: float = 0.05,
                 domain_alpha: float = 1e-6, domain_min_rows: int = 20, domain_layout: list[int] | None = None,
                 seed: int = 0):
        self.shapiro_below = shapiro_below
        self.min_queries = min_queries
        self.window = window
        self.growing = growing
        self.max_rows = max_rows
        self.lockout_after = lockout_after
        self.lockout_s = lockout_s
        self.memory_s = memory_s
        self.reference = reference
        self.max_reference = max_reference
        self.domain_quantile = domain_quantile
        self.domain_share = domain_share
        self.domain_alpha = domain_alpha
        self.domain_min_rows = domain_min_rows
        self.domain_layout = domain_layout
        self.seed = seed
        self._client = "-"
        self._state: StateStore | None = None
        self._lower: np.ndarray | None = None
        self._span: np.ndarray | None = None
        self._domain_ = None  # the calibrated out-of-domain scorer, from check()

    # -- set-up ----------------------------------------------------------------------
    def check(self, target: Target) -> None:
        for what, value, least in (("min_queries", self.min_queries, 3), ("window", self.window, 3),
                                   ("growing", self.growing, 1), ("lockout_after", self.lockout_after, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise UsageError(f"extraction_monitor: {what} must be a whole number of at least {least}, not {value!r}")
        if self.max_rows is not None and (isinstance(self.max_rows, bool) or not isinstance(self.max_rows, (int, np.integer))
                                          or self.max_rows < 1):
            raise UsageError(f"extraction_monitor: max_rows must be a whole number of at least 1 (or null), "
                             f"not {self.max_rows!r}")
        if self.shapiro_below is not None and (isinstance(self.shapiro_below, bool)
                                               or not isinstance(self.shapiro_below, (int, float))
                                               or not 0 < self.shapiro_below < 1):
            raise UsageError(f"extraction_monitor: shapiro_below is a Shapiro-Wilk W in (0, 1) (or null), "
                             f"not {self.shapiro_below!r}")
        if self.shapiro_below is None and self.max_rows is None and self.reference is None:
            raise UsageError("extraction_monitor: give shapiro_below, max_rows, reference or several")
        if self.shapiro_below is not None and self.window < self.min_queries:
            raise UsageError(f"extraction_monitor: window ({self.window}) must hold at least min_queries "
                             f"({self.min_queries}) distances")
        for what, value in (("lockout_s", self.lockout_s), ("memory_s", self.memory_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UsageError(f"extraction_monitor: {what} must be a positive number of seconds, not {value!r}")
        if self.shapiro_below is not None:
            try:
                import scipy.stats  # noqa: F401
            except ImportError:
                raise UsageError("extraction_monitor: the Shapiro-Wilk test needs scipy "
                                 "(pip install 'redline[ml]'), or set shapiro_below: null") from None
        lower, upper = target.input_spec.feature_bounds()
        if self.shapiro_below is not None and not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            # PRADA's distances are in features scaled by these bounds: unbounded, every row scales to
            # NaN, every distance is the same and the test never flags (silently blind)
            raise UsageError("extraction_monitor: PRADA scales features by the input's bounds, and they are not "
                             "finite; give the policy's input finite lower/upper, or set shapiro_below: null")
        self._lower = np.asarray(lower, np.float64)
        span = np.asarray(upper, np.float64) - self._lower
        self._span = np.where(span > 0, span, 1.0)
        if self.reference is not None:
            self._check_domain(target)
        else:
            self._domain_ = None

    def _layout(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the out-of-domain test sees rows in: ``domain_layout`` when given (the
        image inside a model input that is a flat vector), else the model's input shape."""
        if self.domain_layout is None:
            return shape
        layout = self.domain_layout
        if not isinstance(layout, (list, tuple)) or not 2 <= len(layout) <= 3 or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in layout):
            raise UsageError(f"extraction_monitor: domain_layout is an image shape, [channels, height, width] or "
                             f"[height, width], not {layout!r}")
        if int(np.prod(layout)) != int(np.prod(shape)):
            raise UsageError(f"extraction_monitor: domain_layout {list(layout)} holds {int(np.prod(layout))} values, "
                             f"the model's input {list(shape)} holds {int(np.prod(shape))}")
        return tuple(int(v) for v in layout)

    def _check_domain(self, target: Target) -> None:
        """Validate the out-of-domain test's settings, load the reference and calibrate."""
        if not isinstance(self.reference, str) or not self.reference.strip():
            raise UsageError("extraction_monitor: reference must name a data set of in-domain inputs "
                             "(npz:PATH, csv:PATH#unlabelled=true, builtin:NAME), or be null")
        for what, value, least in (("max_reference", self.max_reference, 20), ("domain_min_rows", self.domain_min_rows, 1),
                                   ("seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise UsageError(f"extraction_monitor: {what} must be a whole number of at least {least}, not {value!r}")
        if self.max_reference > _MOST_REFERENCE:  # calibration holds a fold's distances to all the others
            raise UsageError(f"extraction_monitor: max_reference must be at most {_MOST_REFERENCE:,} (calibration "
                             f"and every request compare rows with the whole reference), not {self.max_reference}")
        for what, value, high in (("domain_quantile", self.domain_quantile, 1.0), ("domain_share", self.domain_share, 1.0),
                                  ("domain_alpha", self.domain_alpha, 0.5)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < high:
                raise UsageError(f"extraction_monitor: {what} must be a number in (0, {high:g}), not {value!r}")
        if self.domain_share <= 1 - self.domain_quantile:
            raise UsageError(f"extraction_monitor: domain_share ({self.domain_share}) must exceed the share of in-domain "
                             f"rows called outside, 1 - domain_quantile ({1 - self.domain_quantile:g}), or every "
                             "honest account would be flagged in time")
        shape = tuple(target.input_spec.shape)
        layout = self._layout(shape)
        if self._domain_ is not None and self._domain_.shape == layout:
            return  # calibrated already (check runs again when a server binds the defence)
        try:
            import scipy.special  # noqa: F401
        except ImportError:
            raise UsageError("extraction_monitor: the out-of-domain test needs scipy (pip install 'redline[ml]'), "
                             "or set reference: null") from None
        from .domain import is_image

        rows = reference_rows(self.reference, int(self.max_reference), int(self.seed), "extraction_monitor")
        if tuple(rows.shape[1:]) != shape:
            raise UsageError(f"extraction_monitor: the reference rows have shape {list(rows.shape[1:])}, "
                             f"{target.spec} takes {list(shape)} (a guard policy states it as input:)")
        if len(rows) < 20:
            raise UsageError(f"extraction_monitor: the reference holds {len(rows)} rows; calibrating the "
                             "out-of-domain test needs at least 20")
        finite = np.isfinite(self._lower).all() and np.isfinite(self._lower + self._span).all()
        low = float(self._lower.min()) if finite else float(rows.min())
        high = float((self._lower + self._span).max()) if finite else float(rows.max())
        scorer = _calibrated(rows, layout, float(self.domain_quantile), low, high, int(self.seed))
        if not (0 < scorer.threshold_ < _FLAT_DISTANCE if is_image(layout) else scorer.threshold_ > 0):
            # blank or identical reference rows: nothing would ever be outside, or everything
            raise UsageError(f"extraction_monitor: the reference at {self.reference!r} does not describe a domain "
                             f"(its rows are blank or all alike); give a sample "
                             f"of the inputs the model is meant to answer")
        self._domain_ = scorer

    def for_client(self, client: str, state: StateStore) -> ExtractionMonitor:
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._client, twin._state = str(client), state
        return twin

    # -- per request -------------------------------------------------------------------
    def _key(self, *parts: Any) -> str:
        return ":".join(["extraction_monitor", self._client, *map(str, parts)])

    def _store(self) -> StateStore:
        if self._state is None:
            self._state = MemoryState()
        return self._state

    def _flat(self, x: np.ndarray) -> np.ndarray:
        if self._lower is None:
            raise UsageError("extraction_monitor: check(target) must run before the monitor sees queries")
        rows = np.asarray(x)
        flat = rows.reshape(len(rows), -1)
        if flat.shape[1] != len(self._lower):
            raise InputRejected(f"extraction_monitor: inputs have {flat.shape[1]} features, the model takes "
                                f"{len(self._lower)}")
        return flat

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        state = self._store()
        self._refuse_if_locked(state)
        if not len(x) or (self.max_rows is None and self._domain_ is None):
            return x
        flat = self._flat(x)
        if self.max_rows is not None:  # the budget counts rows the account never sent before
            digests = [_digest(r) for r in flat]
            new = len(set(digests)) - state.add_members(self._key("rows"), digests, ttl=self.memory_s)
            total = state.incr(self._key("count"), new, ttl=self.memory_s)
            if new and total > self.max_rows:  # a request of retries only takes nothing new
                row = max(0, len(x) - int(total - self.max_rows))
                self._flag(state, "budget", row=row, rows=int(total), max_rows=int(self.max_rows))
                self._refuse_if_locked(state)
        if self._domain_ is not None:
            rows, outside = self._domain_evidence(state, flat)
            if len(rows):
                self._test_domain(state, rows, outside)
        return x

    def _domain_evidence(self, state: StateStore, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In batch order, the positions of the rows that are domain evidence, with whether
        each is outside. Evidence is an informative row (not a blank
        image) that is no near-copy of one of the account's last ``_NEAR_MEMORY`` evidence
        rows nor of an earlier row of the batch: an exact retry, a re-take of one odd photo
        and a thief's one digit jittered into padding each count once."""
        rows = np.flatnonzero(self._domain_.informative(flat))  # (exact copies are near-copies too)
        # One blob of float16 layouts, read and written whole (one store call each way; a
        # list of 512 entries cost ~2.5 ms a request on SQLite). Two workers of one account
        # may each write over the other's newest rows: those can then count once more.
        width = self._domain_.reference_.shape[1]
        key = self._key("near", width)  # (layouts of another input shape live apart)
        blob = state.get(key) or b""
        earlier = np.frombuffer(blob, np.float16).reshape(-1, width).astype(self._domain_.memory_dtype)
        with np.errstate(invalid="ignore"):  # once, for both tests
            layouts = self._domain_.represent(flat[rows]) if len(rows) else np.zeros((0, width))
        distinct, reps = self._domain_.distinct(layouts, earlier)
        if len(reps):
            kept = np.concatenate([earlier, np.clip(reps, -6e4, 6e4).astype(earlier.dtype)])[-_NEAR_MEMORY:]
            state.set(key, kept.astype(np.float16).tobytes(), ttl=self.memory_s)
        rows, layouts = rows[distinct], layouts[distinct]
        outside = self._domain_.outside(flat[rows], layouts) if len(rows) else np.zeros(0, bool)
        return rows, outside

    def _test_domain(self, state: StateStore, rows: np.ndarray, outside: np.ndarray) -> None:
        """Add the batch's new rows (their positions, outside or not) to the account's counts
        and flag (before the model answers) at the first row where the sequential test
        rejects the null share."""
        from .domain import log_evidence

        # Counted first, read back from the increments: two workers serving one account at once
        # each test totals that hold their own rows and whatever the other added before.
        n0 = int(state.incr(self._key("dn"), float(len(rows)), ttl=self.memory_s)) - len(rows)
        k0 = int(state.incr(self._key("dk"), float(outside.sum()), ttl=self.memory_s)) - int(outside.sum())
        bar = float(np.log(1.0 / self.domain_alpha))
        n, k = n0 + np.arange(1, len(rows) + 1), k0 + np.cumsum(outside)
        # The evidence falls with every inside row (the alternatives all have more outside
        # rows than the null), so it can first reach the bar only at an outside row or where
        # the account reaches domain_min_rows: the test is computed there only.
        ready = n >= self.domain_min_rows
        where = np.flatnonzero(ready & (outside | (n == max(n[0], self.domain_min_rows))))
        evidence = log_evidence(n[where], k[where], float(self.domain_share))
        hits = where[evidence >= bar]
        if len(hits):
            # The counts are kept: when a lock-out expires, the account's next outside row
            # flags it again, instead of a fresh start that would let a thief take
            # domain_min_rows - 1 answers every lock-out period.
            j = int(hits[0])
            evidence = evidence[where == j]
            self._flag(state, "domain", row=int(rows[j]), rows=int(n[j]), outside=int(k[j]),
                       share=round(float(k[j] / n[j]), 4), log_evidence=round(float(evidence[0]), 2))
            self._refuse_if_locked(state)

    def observe(self, x: np.ndarray, answer: np.ndarray) -> None:
        if self.shapiro_below is None or not len(x):
            return
        state = self._store()
        flat = self._flat(x)
        answer = np.asarray(answer)
        labels = answer.argmax(axis=1) if answer.ndim == 2 else answer.astype(int).reshape(-1)
        distances = self.distances(flat, labels)
        if not distances:
            return
        # The window of distances is one float32 blob, appended to atomically and read back
        # whole: a list of 1000 entries cost about 0.6 ms a request to read on SQLite, the
        # blob 0.05 ms. (An append that read, then wrote, let concurrent requests of one
        # account erase each other's distances: a thief could wash its own out.)
        added = np.asarray([d for _, d in distances], "<f4").tobytes()
        keep = 4 * int(self.window)
        blob = state.append_bytes(self._key("dw"), added, keep=keep, ttl=self.memory_s)
        if len(blob) == min(len(added), keep):  # a new window: carry over a list kept by a version before the blob
            older = state.recent(self._key("d"))
            if older:  # once per account, after an upgrade (a request of the account in flight
                # at that moment may lose its distances to this write: once, not every time)
                blob = (b"".join(older) + added)[-keep:]
                state.set(self._key("dw"), blob, ttl=self.memory_s)
                state.delete(self._key("d"))
        recent = np.frombuffer(blob, "<f4")
        if len(recent) < self.min_queries:
            return
        w = shapiro_w(recent)
        if w < self.shapiro_below:
            self._flag(state, "prada", row=distances[-1][0], w=round(w, 4), distances=len(recent))

    def distances(self, flat: np.ndarray, labels: np.ndarray) -> list[tuple[int, float]]:
        """PRADA's step for each row in order: its minimum distance to the earlier queries of
        its predicted class (growing set), updating the set and its threshold. Returns
        (row, distance) for the rows that had a class set to compare with and were not an
        exact copy of an earlier query of the account (a retry says nothing about a plan)."""
        state = self._store()
        quantised = np.rint(np.clip((np.asarray(flat, np.float64) - self._lower) / self._span, 0, 1) * 255).astype(np.uint8)
        labels = labels.astype(int)
        fresh = [i for i in range(len(quantised))  # exact repeats of earlier queries are skipped
                 if not state.add_members(self._key("seen"), [_digest(flat[i])], ttl=self.memory_s)]
        out: list[tuple[int, float]] = []
        added: dict[int, list[bytes]] = {}
        for label in dict.fromkeys(labels[fresh].tolist()):  # each class's set in one piece
            rows = [i for i in fresh if labels[i] == label]
            stored = state.recent(self._key("g", label), int(self.growing))
            # rows of another width: stored before the policy's input shape changed (a lasting state store)
            stored = [r for r in stored if len(r) == quantised.shape[1]]
            before = (np.frombuffer(b"".join(stored), np.uint8).reshape(len(stored), -1)
                      if stored else np.zeros((0, quantised.shape[1]), np.uint8))
            # Squared distances of this batch's rows to the stored set in one product (exact in
            # float64: integers far below 2**53); a row-by-row loop took a quarter of a second
            # for 256 MNIST rows against a full set.
            batch = quantised[rows].astype(np.float64)
            ahead = before.astype(np.float64)
            to_before = ((batch**2).sum(axis=1)[:, None] + (ahead**2).sum(axis=1)[None, :] - 2.0 * batch @ ahead.T)
            grown: list[np.ndarray] = []  # rows this batch added to the set, in order
            threshold = self._threshold(state, label)  # read once a batch, kept up to date below
            for j, i in enumerate(rows):
                dropped = max(0, len(before) + len(grown) - int(self.growing))  # the set keeps its newest rows
                candidates = [to_before[j, dropped:].min()] if dropped < len(before) else []
                if grown and dropped - len(before) < len(grown):
                    diff = np.asarray(grown[max(0, dropped - len(before)):], np.float64) - batch[j]
                    candidates.append((diff * diff).sum(axis=1).min())
                if not candidates:  # the class's first row: it starts the set
                    grown.append(batch[j])
                    added.setdefault(label, []).append(quantised[i].tobytes())
                    continue
                d = float(np.sqrt(max(0.0, min(candidates)))) / 255.0
                out.append((i, d))
                if d > threshold:
                    grown.append(batch[j])
                    added.setdefault(label, []).append(quantised[i].tobytes())
                    n = state.incr(self._key("n", label), 1, ttl=self.memory_s)
                    s = state.incr(self._key("s", label), d, ttl=self.memory_s)
                    q = state.incr(self._key("q", label), d * d, ttl=self.memory_s)
                    mean = s / n
                    std = float(np.sqrt(max(0.0, q / n - mean * mean)))
                    threshold = max(threshold, mean - std)
                    state.set(self._key("t", label), repr(threshold).encode(), ttl=self.memory_s)
        out.sort()
        for label, rows in added.items():
            state.push(self._key("g", label), rows, keep=int(self.growing), ttl=self.memory_s)
        return out

    def _threshold(self, state: StateStore, label: int) -> float:
        held = state.get(self._key("t", label))
        try:
            return float(held.decode()) if held is not None else 0.0
        except ValueError:
            return 0.0

    def _flag(self, state: StateStore, test: str, row: int, **detail: Any) -> None:
        total = state.incr(self._key("flags"), 1, ttl=self.memory_s)
        emit(self.name, "flagged", client=self._client, row=int(row), test=test, flags=int(total), **detail)
        if total < self.lockout_after:
            return
        until = lock_out(state, self._key("locked"), self.clock(), self.lockout_s)
        state.delete(self._key("flags"))
        emit(self.name, "locked_out", client=self._client, row=int(row), test=test, flags=int(total),
             lockout_s=float(self.lockout_s), until=until)

    def _refuse_if_locked(self, state: StateStore) -> None:
        refuse_if_locked_out(state, self._key("locked"), self.clock(), self.lockout_s,
                             "this account is locked out after queries that look like model stealing")


def _calibrated(rows: np.ndarray, layout: tuple[int, ...], quantile: float, low: float, high: float,
                seed: int) -> DomainScorer:
    """A DomainScorer fitted on ``rows``, shared by every monitor given the same reference and
    settings. A guard's hot reload builds new monitors; refitting (a second of CPU on MNIST)
    competed with the requests in flight and tripled their p99 during reloads. A fitted
    scorer is only read afterwards, so sharing it is safe; the key holds the rows' digest,
    so a reference file changed on disk is fitted again."""
    from .domain import DomainScorer

    key = (hashlib.blake2b(np.ascontiguousarray(rows).tobytes(), digest_size=16).digest(), rows.shape, layout,
           quantile, low, high, seed)
    with _CALIBRATED_LOCK:
        scorer = _CALIBRATED.pop(key, None)
        if scorer is not None:  # the most recently used last: the least recently used goes first
            _CALIBRATED[key] = scorer
    if scorer is None:
        scorer = DomainScorer(layout).fit(rows, quantile, low, high, seed=seed)
        with _CALIBRATED_LOCK:
            _CALIBRATED[key] = scorer
            while len(_CALIBRATED) > _MOST_CALIBRATED:
                _CALIBRATED.pop(next(iter(_CALIBRATED)))
    return scorer


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row, np.float64).tobytes(), digest_size=12).digest()


def shapiro_w(values: np.ndarray) -> float:
    """Shapiro-Wilk W of ``values`` (1 for a sample with no spread: nothing to judge): the
    squared correlation of the sorted values with Royston's (1995, AS R94) coefficients,
    which depend on the sample size only and are kept per size. scipy.stats.shapiro gives
    the same W (the tests compare them) but spent about 0.2 ms a call on its argument
    handling, on every answered request of every account."""
    values = np.asarray(values, np.float64)[-5000:]
    if len(values) < 3 or np.ptp(values) == 0:
        return 1.0
    ordered = np.sort(values)
    a = _shapiro_coefficients(len(ordered))
    centred = ordered - ordered.mean()
    return float(min(1.0, (a @ centred) ** 2 / ((a @ a) * (centred @ centred))))


@functools.lru_cache(maxsize=64)
def _shapiro_coefficients(n: int) -> np.ndarray:
    """AS R94's coefficients for a sample of ``n`` (all n of them: the lower half negative,
    the upper half their mirror, 0 in the middle of an odd sample)."""
    from scipy.special import ndtri

    half = n // 2
    if n == 3:
        lower = np.array([np.sqrt(0.5)])
    else:
        m = ndtri((np.arange(1, half + 1) - 0.375) / (n + 0.25))  # expected normal order statistics
        summ2 = 2.0 * float(m @ m)
        ssumm2, rsn = np.sqrt(summ2), 1.0 / np.sqrt(n)
        # AS R94's polynomials in 1 / sqrt(n), highest power first for np.polyval
        a1 = np.polyval((-2.706056, 4.434685, -2.071190, -0.147981, 0.221157, 0.0), rsn) - m[0] / ssumm2
        lower = -m.copy()
        if n > 5:
            a2 = -m[1] / ssumm2 + np.polyval((-3.582633, 5.682633, -1.752461, -0.293762, 0.042981, 0.0), rsn)
            fac = np.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a1**2 - 2 * a2**2))
            lower = lower / fac
            lower[1] = a2
        else:
            fac = np.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a1**2))
            lower = lower / fac
        lower[0] = a1
    full = np.zeros(n)
    full[:half] = -lower
    full[n - half:] = lower[::-1]
    full.setflags(write=False)
    return full
