"""Stateful detection of black-box query attacks, per account, with lock-out.

Attacks that work from a model's answers alone (decision-based HopSkipJump and Boundary,
score-based Square, zeroth-order gradient estimates) send long runs of queries that are
small changes of one another: probes around a boundary point, a patch changed at a time.
Honest clients send different inputs. So, as Chen, Carlini & Wagner (2020) proposed, an
account whose new query lies very close to something it sent before is probing; BlackLight
(Li et al. 2022) makes "close" cheap to test with fingerprints:

1. each feature is scaled to [0, 1] by the input's bounds and quantised to ``levels`` steps,
   so perturbations smaller than a step mostly vanish;
2. the quantised input (flattened) is cut into sliding windows of ``window`` values; each
   window is hashed together with its position, and windows whose values are all alike
   (an image's empty background, a run of zero columns) are dropped, as every input shares
   them;
3. ``hashes`` x ``band`` min-hashes of the query's window set are grouped into ``hashes``
   bands of ``band`` values (MinHash locality-sensitive hashing): the fingerprint. Two
   queries share a band about as often as the share of windows they have in common,
   raised to the power ``band``; so a near-duplicate shares most bands with the one query
   it came from, while an honest query shares almost none with any single earlier one,
   however long the history;
4. the query's score is the share of its bands already in the account's recent history.
   A score of at least ``threshold`` flags it.

An exact repeat (the same bytes sent again, a client's retry) carries no new information
for an attacker and is neither scored nor counted.

A flag counts toward the lock-out only when the flagged query is also like an earlier
*flagged* query of the account (``chained``, the default; the flagged fingerprints are kept
in a third set for ``flag_window_s``), and the chain's first link then counts too. A client
that re-sends an input under a fresh corruption (a photo taken twice) sends one near-copy of
it; a probing attack sends chains of them. ``lockout_after`` counted flags within
``flag_window_s`` seconds lock the account out for ``lockout_s`` seconds: every request is
refused with :class:`~redline.defences.base.LockedOut` until the lock expires. With
``chained: false`` every flag counts (the default before 2026-12-07).

Measured with benchmarks/bench_guard_detection.py (in process): of held-out honest clients
that re-send 0-10% of their inputs under a fresh corruption, chained locks out 0 of 400 on
the digits MLP and 0 of 100 on the MNIST CNN, where unchained locked out 21 and 9; of honest
clients without re-takes none was ever flagged either way. The price is later lock-outs: of
10 accounts per attack that attack 5 inputs each, every FM01.decision, HopSkipJump, Boundary and
Square eps 0.1 account and every MNIST account is still stopped before its last input is won, on
digits 9 of 10 FM01.square and 8 of 10 ART Square accounts (9 and 9 unchained); and an
adaptive HopSkipJump that adds +-0.0625 of noise to every query over 4 accounts got an
account locked out in 2 of 10 digits sessions instead of 10 of 10 (it found an adversarial
example in 0 of 10, against 1 of 10 unchained: the noise itself defeats it at these budgets).

``lockout_after`` is 2 because no honest client of 400 on the digits MLP had even one
flag, while a third flag comes too late for fast attacks (Square had fooled the model
before it in 3 of 18 digits sessions, 1 at two). Lock-out at the first flag (unchained)
stops no more attack sessions (12 / 14 of 18 on digits / MNIST either way) and locks out
about a quarter of honest re-taking clients.

With ``refuse_flagged: true`` a flagged query (chained or not) is not answered: its request
is refused with :class:`~redline.defences.base.QueryRefused` (HTTP 403, reason
``similar_query``; the message names neither the rows nor a score or threshold, which would
let a prober learn in one batch of variants how much change escapes; the audit record names
the rows), while flag counting and lock-out go on as above. The protocol answers all rows
of a request or none, so one flagged row refuses the batch. A refused query's fingerprints stay in the
history, and its exact bytes are remembered (``refused:<digest>`` for ``memory_s``), so
sending it again is refused again (without a new flag) instead of passing as a retry.
It is off by default because the benchmark shows it buys little. Measured before the corner
test (below), an attack won at queries that were not flagged, so there was nothing to refuse
(digits MLP, 10 sessions per attack: sessions won before lock-out 27 -> 26 of 60). With the
corner test it refuses FM01.square's corners, but ART Square reads its refused stripes as no
gain and falls back to one-way window moves that neither test sees early: 17 of 60 digits
sessions won either way (README, "Corners of an L-infinity ball"). The cost falls on honest
clients that re-send an input under a fresh corruption: of held-out digits clients with
0-10% re-takes about a quarter had a request refused, 4% of their requests; clients without
re-takes lost nothing, and lock-outs were as without it. Turn it on for a service whose
clients never re-send near-copies.

With ``vertex: true`` (the default) a second test runs beside the fingerprints: a query that
is a corner of the L-infinity ball around one of the account's last ``vertex_memory`` queries
that were not corners themselves (:mod:`redline.defences.vertex`: it moved every feature by
one radius, or onto a bound, both ways, and not as a brightness or contrast change or a step
of the data's own grid does) is flagged too, and its chain link is that centre, so a second
corner of the same ball counts. Score-based L-infinity attacks (Square's stripes, SignHunter)
ask about the clean input and then send such corners from their first query on, while their
queries are still too unlike one another for the fingerprints. The audit record of such a
flag says ``test: corner``; benchmarks/bench_guard_detection.py and bench_guard_corners.py
measure it (README, "Corners of an L-infinity ball").

Everything per account lives in the :class:`~redline.defences.state.StateStore` handed to
:meth:`QueryDetector.for_client` (keys ``query_detector:<client>:...``), so the workers of
one guard share histories and lock-outs. The history is two generations of hash sets of
``history // 2`` queries each (a store keeps sets, not ordered lists of fingerprints): every
query is added to the current and the previous generation and scored against the previous
one, which then holds the last ``history // 2`` to ``history`` queries.
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, InputRejected, LockedOut, QueryRefused, emit
from .lockout import lock_out, refuse_if_locked_out
from .state import MemoryState, StateStore
from .vertex import VertexTest

_EXACT = b"x"  # tags an exact-input digest, so it never equals a window hash
_MOST_VERTEX_MEMORY = 256  # earlier queries the corner test compares with (a 265 KB blob per account)


class QueryDetector(Defence):
    """Flag queries similar to the account's history; lock the account out after repeated flags."""

    name = "query_detector"
    policy_key = "query_detector"
    #: Wall clock for the lock-out deadline a refusal reports (tests replace it).
    clock = staticmethod(time.time)

    def __init__(self, threshold: float = 0.25, history: int = 1000, lockout_after: int = 2,
                 lockout_s: float = 3600.0, flag_window_s: float = 3600.0, levels: int = 8,
                 window: int | None = None, hashes: int = 50, band: int = 2, memory_s: float = 86400.0,
                 chained: bool = True, refuse_flagged: bool = False, vertex: bool = True,
                 vertex_memory: int = 64):
        self.threshold = threshold
        self.history = history
        self.lockout_after = lockout_after
        self.lockout_s = lockout_s
        self.flag_window_s = flag_window_s
        self.levels = levels
        self.window = window
        self.hashes = hashes
        self.band = band
        self.memory_s = memory_s
        self.chained = chained
        self.refuse_flagged = refuse_flagged
        self.vertex = vertex
        self.vertex_memory = vertex_memory
        self._client = "-"
        self._state: StateStore | None = None  # a private MemoryState until for_client gives one
        self._hasher: _WindowHasher | None = None
        self._corners: VertexTest | None = None
        self._counts = _Counters()

    # -- set-up ----------------------------------------------------------------------
    def check(self, target: Target) -> None:
        for what, value, least in (("history", self.history, 2), ("lockout_after", self.lockout_after, 1),
                                   ("levels", self.levels, 2), ("hashes", self.hashes, 1),
                                   ("band", self.band, 1), ("vertex_memory", self.vertex_memory, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise UsageError(f"query_detector: {what} must be a whole number of at least {least}, not {value!r}")
        for what, value in (("lockout_s", self.lockout_s), ("flag_window_s", self.flag_window_s),
                            ("memory_s", self.memory_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UsageError(f"query_detector: {what} must be a positive number of seconds, not {value!r}")
        if not isinstance(self.vertex_memory, bool) and isinstance(self.vertex_memory, (int, np.integer)) \
                and self.vertex_memory > _MOST_VERTEX_MEMORY:
            raise UsageError(f"query_detector: vertex_memory is at most {_MOST_VERTEX_MEMORY} queries (each request "
                             f"reads and compares them all), not {self.vertex_memory!r}")
        for what, value in (("chained", self.chained), ("refuse_flagged", self.refuse_flagged),
                            ("vertex", self.vertex)):
            if not isinstance(value, bool):
                raise UsageError(f"query_detector: {what} must be true or false, not {value!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0 < self.threshold <= 1:
            raise UsageError(f"query_detector: threshold is a share of matching fingerprint hashes in (0, 1], "
                             f"not {self.threshold!r}")
        lower, upper = target.input_spec.feature_bounds()
        width = len(lower)
        if width < 2:
            raise UsageError(f"query_detector: {target.spec} takes {width} feature per row; the detector compares "
                             f"windows of features, so it needs the model's input shape and bounds "
                             f"(a guard policy states them under input:)")
        window = self.window if self.window is not None else default_window(width)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 1 <= window <= width:
            raise UsageError(f"query_detector: window must be a whole number from 1 to the {width} features "
                             f"of {target.spec}, not {window!r}")
        self._hasher = _WindowHasher(lower, upper, int(self.levels), int(window), int(self.hashes), int(self.band))
        self._corners = VertexTest(lower, upper) if self.vertex else None

    def for_client(self, client: str, state: StateStore) -> QueryDetector:
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)  # parameters, hasher and the shared counters
        twin._client, twin._state = str(client), state
        return twin

    def metrics(self) -> dict[str, float]:
        return self._counts.snapshot()

    # -- per request -------------------------------------------------------------------
    def _key(self, *parts: Any) -> str:
        return ":".join(["query_detector", self._client, *map(str, parts)])

    def _store(self) -> StateStore:
        if self._state is None:
            self._state = MemoryState()
        return self._state

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        state = self._store()
        self._refuse_if_locked(state)
        scores, prints, digests, centres = self._score(x)
        similar = scores >= self.threshold  # NaN (an exact repeat) never is
        hit = similar | np.array([c is not None for c in centres], dtype=bool)
        refused = []
        if self.refuse_flagged:
            # A flagged row's exact digest is remembered for memory_s (before any lock-out
            # below), and every other row is looked up: an exact re-send of a refused row,
            # which the history would take for a harmless retry or has forgotten, is refused too.
            for i in np.flatnonzero(hit):
                state.set(self._key("refused", digests[i].hex()), b"1", ttl=self.memory_s)
            refused = [i for i in range(len(scores))
                       if hit[i] or state.get(self._key("refused", digests[i].hex())) is not None]
        flagged = 0
        for i in np.flatnonzero(hit):
            flagged += 1
            test = {"test": "similar" if similar[i] else "corner"}
            if centres[i] is not None:
                self._counts.add(corners=1)
            if self.chained:
                # both links are recorded: a later query may chain to either
                links = [self._chains(state, prints[i]),
                         centres[i] is not None and self._chains(state, [b"c" + centres[i]])]
                if not any(links):
                    emit(self.name, "flagged", client=self._client, row=int(i), score=round(float(scores[i]), 3),
                         chained=False, **test)
                    continue
            if self._count_flag(state, scores[i], row=int(i), **test):
                self._counts.add(queries=int(i) + 1, flagged=flagged, lockouts=1)
                self._refuse_if_locked(state)
        self._counts.add(queries=len(scores), flagged=flagged)
        if refused:
            self._refuse_query(refused, len(scores))
        return x

    def _refuse_query(self, rows: list[int], batch: int) -> None:
        """Refuse the whole request (the protocol answers all rows or none). The client is
        told neither which rows were too similar nor the score or threshold: naming rows
        would let a prober learn, one batch of variants at a time, how much change escapes
        the detector. The audit record names them."""
        self._counts.add(withheld=1)
        emit(self.name, "refused", client=self._client, rows=rows, batch=batch)
        raise QueryRefused("not answered: this request holds a query too like a recent query of this account",
                           reason="similar_query")

    def score(self, x: np.ndarray) -> np.ndarray:
        """Add the rows of ``x`` to the account's history, in order, and return each one's
        score: the share of its fingerprint already there (NaN for an exact repeat).
        Records no flag; :meth:`transform_input` decides on these scores."""
        return self._score(x)[0]

    def _chains(self, state: StateStore, members: list[bytes]) -> bool:
        """Whether a flagged query is like an earlier *flagged* query of the account (a
        chain of probes around one point), remembering it for the next one. A client that
        re-sends a fresh input under another corruption has one flagged copy of it: that
        alone does not chain."""
        if not members:
            return False
        known = state.add_members(self._key("flagged"), members, ttl=self.flag_window_s)
        return known / len(members) >= self.threshold

    def _score(self, x: np.ndarray) -> tuple[np.ndarray, list[list[bytes]], list[bytes], list[bytes | None]]:
        if self._hasher is None:
            raise UsageError("query_detector: check(target) must run before the detector sees queries")
        state = self._store()
        rows = np.asarray(x)
        flat = rows.reshape(len(rows), -1) if rows.ndim > 1 else rows.reshape(len(rows), 1)
        if flat.shape[1] != self._hasher.width:
            raise InputRejected(f"query_detector: inputs have {flat.shape[1]} features, the model takes "
                                f"{self._hasher.width}")
        scores = np.full(len(flat), np.nan)
        rows_members: list[list[bytes]] = [[] for _ in range(len(flat))]
        digests: list[bytes] = []
        centres: list[bytes | None] = [None] * len(flat)
        if not len(flat):
            return scores, rows_members, digests, centres
        fingerprints = self._hasher.fingerprints(flat)
        last = int(state.incr(self._key("seen"), len(flat)))
        bucket = max(1, int(self.history) // 2)
        fresh: list[int] = []  # rows that are not exact repeats, in order
        digests.extend(_EXACT + hashlib.blake2b(np.ascontiguousarray(row, np.float64).tobytes(), digest_size=12).digest()
                       for row in flat)
        generations = (last - len(flat) + np.arange(len(flat))) // bucket  # each query's place in the history
        # One store call per step for all rows of a generation (four per request, not four
        # per row): each group is counted against the set and the groups before it, so a
        # row still sees the rows sent before it in its own batch.
        for generation in np.unique(generations):
            rows = np.flatnonzero(generations == generation)
            previous, current = self._key("h", generation - 1), self._key("h", generation)
            known = state.add_member_groups(previous, [[digests[i]] for i in rows], ttl=self.memory_s)
            state.add_members(current, [digests[i] for i in rows], ttl=self.memory_s)
            scored = []
            for i, repeat in zip(rows, known):
                if repeat:
                    self._counts.add(repeats=1)
                    continue
                fresh.append(int(i))
                # 8 little-endian bytes a band (as stored since the detector began: a history
                # written by an earlier version still matches); one call, then slices
                raw = fingerprints[i].astype("<u8").tobytes()
                rows_members[i] = list(dict.fromkeys(raw[k:k + 8] for k in range(0, len(raw), 8)))
                if rows_members[i]:
                    scored.append(i)
                else:  # nothing informative to compare (a blank input)
                    scores[i] = 0.0
            if scored:
                matches = state.add_member_groups(previous, [rows_members[i] for i in scored], ttl=self.memory_s)
                scores[scored] = np.asarray(matches, np.float64) / [len(rows_members[i]) for i in scored]
                state.add_members(current, [m for i in scored for m in rows_members[i]], ttl=self.memory_s)
        # Generations older than the previous one are never read again: drop them when this
        # batch started a new one, or a busy account's history would grow without end.
        before = (last - len(flat) - 1) // bucket  # the generation of the account's query before this batch
        for stale in range(max(-1, before - 1), (last - 1) // bucket - 1):  # (-1: generation 0's empty previous)
            state.delete(self._key("h", stale))
        if self._corners is not None and fresh:
            for i, centre in zip(fresh, self._corner_centres(state, flat[fresh], [digests[i] for i in fresh])):
                centres[i] = centre
        return scores, rows_members, digests, centres

    def _corner_centres(self, state: StateStore, rows: np.ndarray, digests: list[bytes]) -> list[bytes | None]:
        """For each row, the digest of an earlier row of the account (among the last
        ``vertex_memory``, earlier rows of this batch included) whose L-infinity ball it is a
        corner of, or None; then the rows that are not corners join that memory. The memory is one blob of
        (12-byte digest, float32 features) records, read and written whole; two workers of one
        account may each drop the other's rows from it, which only shortens the memory."""
        corners = self._corners
        record = 12 + 4 * corners.width
        key = self._key("corners", corners.tag)  # a memory kept for another input layout is not read
        old = np.frombuffer(state.get(key) or b"", np.uint8)
        old = old.reshape(-1, record) if len(old) % record == 0 else np.zeros((0, record), np.uint8)
        new = corners.scale(rows)
        found = corners.corners(new, old[:, 12:].copy().view(np.float32), int(self.vertex_memory))
        names = [bytes(d) for d in old[:, :12]] + [d[-12:] for d in digests]
        records = np.concatenate([np.frombuffer(b"".join(d[-12:] for d in digests), np.uint8).reshape(-1, 12),
                                  np.ascontiguousarray(new).view(np.uint8)], axis=1)
        # A corner is kept out of the memory: it is never the centre of an attack's later
        # queries, and an attack on many inputs at once would otherwise push its clean
        # inputs out with its corners.
        kept = np.concatenate([old, records[found < 0]])[-int(self.vertex_memory):]
        state.set(key, kept.tobytes(), ttl=self.memory_s)
        return [names[j] if j >= 0 else None for j in found]

    def _count_flag(self, state: StateStore, score: float, row: int, **detail: Any) -> bool:
        """Record one flagged query; lock the account out (and say so) when it is one too many."""
        total = state.incr(self._key("flags"), 1, ttl=self.flag_window_s)
        if self.chained and total == 1:  # the chain's first link, flagged before, counts too
            total = state.incr(self._key("flags"), 1, ttl=self.flag_window_s)
        emit(self.name, "flagged", client=self._client, row=row, score=round(float(score), 3), flags=int(total),
             **({"chained": True} if self.chained else {}), **detail)
        if total < self.lockout_after:
            return False
        until = lock_out(state, self._key("locked"), self.clock(), self.lockout_s)
        state.delete(self._key("flags"))
        emit(self.name, "locked_out", client=self._client, row=row, flags=int(total),
             lockout_s=float(self.lockout_s), until=until)
        return True

    def _refuse_if_locked(self, state: StateStore) -> None:
        try:
            refuse_if_locked_out(state, self._key("locked"), self.clock(), self.lockout_s,
                                 "this account is locked out after repeated queries that look like a model attack")
        except LockedOut:
            self._counts.add(refused=1)
            raise


def default_window(width: int) -> int:
    """Window length for ``width`` features: an eighth of them, from 4 to 20 values
    (BlackLight's 20 for images; short ones so a 30-column table still has many windows)."""
    return int(min(20, max(4, width // 8), width))


class _WindowHasher:
    """Fingerprints of quantised sliding windows, for a batch at once (numpy, no per-row hashing).

    ``hashes * band`` independent min-hashes of a query's window set are grouped into
    ``hashes`` bands of ``band`` values each; a band's combined value is one fingerprint
    entry (MinHash locality-sensitive hashing). Two queries share a band with probability
    about J ** band, J being the overlap (Jaccard) of their window sets. A band of one
    value would be matched by a window shared with *any* past query, and a long honest
    history covers most common windows (stroke pieces of digits); a band of two or more
    must come from one past query that shares all of them, which near-duplicates do and
    unrelated inputs almost never do.
    """

    _CELLS = 1 << 22  # rows x windows x min-hashes computed at once (16 MiB of uint32)

    def __init__(self, lower: np.ndarray, upper: np.ndarray, levels: int, window: int, hashes: int, band: int):
        self.width = len(lower)
        self.lower = np.asarray(lower, np.float64)
        span = np.asarray(upper, np.float64) - self.lower
        self.span = np.where(span > 0, span, 1.0)
        self.levels, self.window, self.hashes, self.band = levels, window, hashes, band
        positions = self.width - window + 1
        # Random 64-bit linear hashes, one per window position (equal windows at other
        # places hash apart), and the salts of the min-hashes and bands. A fixed seed, so
        # every worker and every restart computes the same fingerprints.
        rng = np.random.default_rng(0x51B1A)
        self.weights = rng.integers(1, 2**63, size=(positions, window), dtype=np.uint64) | np.uint64(1)
        self.offsets = rng.integers(0, 2**63, size=positions, dtype=np.uint64)
        self.multipliers = (rng.integers(0, 2**31, size=hashes * band, dtype=np.uint32) * np.uint32(2)) | np.uint32(1)
        self.increments = rng.integers(0, 2**32, size=hashes * band, dtype=np.uint32)
        self.band_weights = rng.integers(1, 2**63, size=(hashes, band), dtype=np.uint64) | np.uint64(1)

    def quantise(self, flat: np.ndarray) -> np.ndarray:
        z = (np.nan_to_num(np.asarray(flat, np.float64), nan=0.0, posinf=1e300, neginf=-1e300) - self.lower) / self.span
        return np.clip(np.floor(np.clip(z, 0.0, 1.0) * self.levels), 0, self.levels - 1).astype(np.uint64)

    def fingerprints(self, flat: np.ndarray) -> list[np.ndarray]:
        """One array of band values per row (big-endian uint64); empty for a row with no
        informative window (nothing to compare)."""
        q = self.quantise(flat)
        windows = np.lib.stride_tricks.sliding_window_view(q, self.window, axis=1)  # (n, positions, window)
        informative = windows.max(axis=2) != windows.min(axis=2)
        with np.errstate(over="ignore"):
            hashed = _mix((windows * self.weights[None]).sum(axis=2, dtype=np.uint64) + self.offsets[None])
        has_any = informative.any(axis=1)
        # An uninformative window takes the hash of its row's first informative one: a
        # duplicate leaves every minimum of the row's set as it was.
        first = hashed[np.arange(len(hashed)), informative.argmax(axis=1)]
        hashed = (np.where(informative, hashed, first[:, None]) >> np.uint64(32)).astype(np.uint32)
        step = max(1, self._CELLS // (hashed.shape[1] * len(self.multipliers)))
        prints: list[np.ndarray] = []
        for start in range(0, len(hashed), step):
            chunk = hashed[start:start + step]
            with np.errstate(over="ignore"):
                # min-hash j of a set: its least value under x -> a_j x + b_j (mod 2**32),
                # a bijection for odd a_j; 32 bits and no full mix per value keep it cheap
                minima = (chunk[:, :, None] * self.multipliers + self.increments).min(axis=1)
                minima = minima.astype(np.uint64).reshape(len(chunk), self.hashes, self.band)
                bands = _mix((minima * self.band_weights[None]).sum(axis=2, dtype=np.uint64))
            for row, any_window in zip(bands, has_any[start:start + step]):
                prints.append(row.astype(">u8") if any_window else np.zeros(0, ">u8"))
        return prints


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads a linear hash over all 64 bits."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


class _Counters:
    """Process-wide counters of one detector and the per-client twins made from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {"queries": 0, "flagged": 0, "repeats": 0, "lockouts": 0, "refused": 0,
                        "withheld": 0, "corners": 0}

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._values[name] += int(amount)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {f"query_detector_{name}": float(v) for name, v in self._values.items()}
