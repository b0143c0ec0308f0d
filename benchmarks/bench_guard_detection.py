"""Stateful query-attack detection (redline.defences.query_detector) on attack and honest traffic.

One run, in process: a zoo model (digits by default, MNIST too with ``--mnist`` or ``--full``)
behind ``DefendedTarget(model, [QueryDetector()])`` with the policy defaults (lock-out at the
second counted flag, a flag counting only when it chains to an earlier flagged query;
``--set chained=false`` counts every flag, ``--set lockout_after=3`` shows where a third flag
would come). ``--tabular``
adds two tables: ``breast_cancer_mlp`` (a scikit-learn MLP fitted here on builtin:breast_cancer,
30 features in [0, 1]) and the zoo ``fair_logreg`` (8 survey codes); their honest corruptions are
Gaussian noise of 2-8% of each feature's range or one answer swapped for another respondent's. Every session is one account (a ``for_client`` twin on one shared
MemoryState), so sessions never see each other's history.

* Attack sessions, each on other inputs: redline's FM01.decision (HopSkipJump-style, labels),
  FM01.square (scores) and FM05.learning (model stealing), and ART's HopSkipJump, Boundary,
  Square and KnockoffNets, ART reaching the defended model through a BlackBoxClassifier (or,
  for Square, which insists on a neural-network estimator, a torch module that forwards to it).
  Reported per attack: for each flag up to ``lockout_after``, sessions that got it and the
  median queries of the session up to it (flag k is where an unchained ``lockout_after: k``
  would lock the session out), the actual lock-out, and the query at which the evasion had already won (its
  answer was a wrong label within the attack's radius of a clean input): a lock-out after
  that query came too late, which is not the same as a miss. Summary per ``lockout_after``.
* Model stealing: KnockoffNets on the bare model with 100/300/800 pool rows (``--steal-budgets``):
  the fidelity a ``rows_per_day`` budget leaves a thief per account and day. A session
  counts every row it sent, a redline check's own clean-accuracy rows included. ART Square
  runs at eps 0.3 (MNIST) or 0.25 (digits), and at 0.1.
* Honest traffic: many clients replaying held-out inputs of the model's data (the ``pool``
  role: inputs the model never trained on, and that were not used to choose the detector's
  defaults, which were tuned on the ``test`` role), in batches of 1-16, with 10% exact repeats
  (retries) and 30% of inputs under a common corruption (Gaussian noise, blur, brightness).
  Reported: flagged share of the scored queries (repeats are not scored), clients with any
  flag, clients locked out. The same traffic built from the ``test`` role is the calibration
  set: its largest score and 99.9th percentile are printed next to the threshold.
* Adaptive attacker: ART's HopSkipJump whose every query is randomly transformed (uniform
  noise of ``--adaptive-noise`` per feature and a random brightness shift) to move it off
  the detector's quantisation grid, its queries split round robin over ``--accounts``
  accounts (a locked account is dropped). Reported: sessions with at least one account
  locked out, sessions with all locked out, and the attack's success rate (an input the bare
  model misclassifies within the L2 radius) next to the same attack on the bare model.

* Accounts as attackers run them (``--inputs-per-account``, default 5): each account attacks
  that many inputs one after another on one history (a redline FM01 check: one run per input,
  each with its own labelling rows). Reported per attack: accounts *stopped* (locked out
  before the last input was won), *late* (locked out after every input was won), *escaped*
  (all won, never locked out), *failed* (never locked out, the attack fell short by itself),
  and the inputs each account won before its lock-out. The single-input table above is kept
  as it is: a session that won before its lock-out is a miss there.
* Model stealing behind the extraction monitor (``redline.defences.extraction_monitor``,
  ``--monitor PARAM=VALUE``; this run gives it ``max_rows: 500``, the largest varied honest
  client below, so the budget is a policy number, not a measured threshold) and the query
  detector: KnockoffNets, FM05.learning and JbDA (Papernot et al. 2017's Jacobian
  augmentation from 10 pool seeds, the attack PRADA was built against). Reported: rows to the
  monitor's flag and which test raised it, the lock-out and which defence locked, the rows
  answered, and the fidelity of a copy trained on exactly those answers (what the thief
  got away with).
* Varied honest clients (``--varied-clients``, per role and population): sizes log-uniform
  from 10 to ``--varied-largest`` rows, 0-30% exact repeats, 10-60% corrupted, batches of
  1-32; once without and once with 0-10% re-takes (an input sent again under a fresh
  corruption, as a photo taken twice). Test role = calibration, pool role = held out.
  Reported: clients with >= 1 and >= 2 query-detector flags (locked out at lockout_after 1
  and 2) with 95% upper bounds, clients the extraction monitor flagged, and the least
  Shapiro-Wilk W any client reached (what ``shapiro_below`` must stay under).

* ``--set refuse_flagged=true``: every flagged query is refused (``QueryRefused``, HTTP 403
  ``similar_query``), not only answered until the lock-out. A refused request does not end a
  session (a lock-out does): the client carries on, and an attack library is handed the last
  answer its account received for each refused row (no new information; never judged a win).
  Reported per attack ("detection and wins"): sessions detected (>= 1 flag, with the median
  queries to the first: Chen, Carlini & Wagner's queries to detection), locked out, won (an
  answer the client got was a successful evasion; the session ends at its lock-out), the row
  of each win and whether that query was itself flagged (a win at an unflagged query is one
  no refusal can stop), and requests refused; in the accounts view the inputs won and how
  many at a flagged query; for honest clients, clients with a refused request and the share
  of requests and rows refused.

``--via-guard`` runs every session over loopback through the real guard: the zoo model
served on 127.0.0.1, ``redline guard`` (uvicorn, in a thread) in front of it with a policy of
one ``query_detector`` and a key per account; decisions are read back from the guard's
audit log. The honest traffic's per-query scores (for the calibration figures and the
per-query false-positive rate) are computed in process by the same detector code; flagged
and locked-out clients are what the guard decided. The accounts view goes through the guard
too; the stealing sessions behind the extraction monitor and the varied honest clients run
in process only.

``--domain`` runs the whole policy a deployment would: the extraction monitor gets the
in-domain reference (the train and test roles; the honest clients' pool role stays out of
it) and sits behind the query detector in front of the evasion sessions too (in the guard's
policy with ``--via-guard``), so detection is the first flag of either defence; the
detection table says how many sessions the monitor flagged first.

Measured 2026-12-07 in process with the chained default (load 3.5-4 on 2 shared cores;
``--k-accounts 10``, digits ~4 min with ``--varied-clients 400``, MNIST ~3 min with 100):
accounts of 5 inputs, 10 per attack, stopped before their last input was won: 57/60 on
digits (FM01.square 9, ART Square eps 0.25 8: one won all 5 and two were never locked out),
60/60 on MNIST; first flag at a median of 4-20 rows, lock-out at 6-68. Held-out honest
clients with any flag: 0/400 varied (digits; 0/100 MNIST); with 0-10% re-takes 94/400
(24/100) had a flag, 21/400 (9/100) a second one (the unchained lock-out), 0/400 (0/100)
were locked out. Single inputs (3 sessions per attack): 11 / 14 of 18 evasion sessions
locked out before any win on digits / MNIST, against 12 / 14 in the same sessions at the
second flag. Model stealing behind ``extraction_monitor`` (``max_rows: 500``): KnockoffNets
and FM05.learning locked out at row 501 by the budget with copies of 95-97% (digits) / 87%
(MNIST) fidelity; JbDA locked at 126-318 rows (PRADA in 4 of 6 sessions, the query detector
in 2), copies of 38-73%; no honest client flagged by the monitor. The unchained default
measured before: re-takers locked out 21/400 (9/100), accounts stopped 58/60 (60/60), JbDA
locked at 42-318 rows, mostly by the query detector, copies of 41-60%.

The corner test (``vertex``, on by default since the third session of 2026-12-07), measured
in process with ``--sessions 10``, off -> on: digits evasion sessions detected 54 -> 60 of 60
(median first flag 14 -> 5), won before lock-out 28 -> 17, account inputs won 37 -> 10 of 300;
MNIST (``--models mnist_cnn``) 57 -> 59 of 60 (13 -> 5), 8 -> 8, 2 -> 1; honest flags the
same. With refuse_flagged on top: digits sessions won 17 either way (ART Square 1 -> 6: its
refused stripes send it back to one-way window moves from the clean input), MNIST 8 -> 5.
An undetected session is listed with the rows it sent and whether it won. Runs repeat
exactly since ART's HopSkipJump and Boundary are seeded (``_seed_art_generators``).

The whole policy over loopback, measured 2026-12-07 (load under 1): ``--models
mnist_cnn,digits_mlp_overfit --sessions 10 --domain --via-guard --clients 100`` (131 s):
evasion sessions detected 60 of 60 on each model, median first flag at query 5 on each
(per attack: FM01.decision 53 / 48, FM01.square 5 / 5, ART HopSkipJump 11 / 9, Boundary 8 /
5, Square 4 / 4). MNIST's last undetected session, the ART HopSkipJump that sent only
random images looking for a starting point, is now flagged by the monitor's domain test
at row 21. Won before lock-out: 8 / 17 of 60, as without the monitor. Honest clients (pool
role, 100 each, 10% repeats, 30% corrupted) through the same guard: 0 of 9,000 scored
queries flagged on each model (95% upper bound 0.033%), no client flagged or locked out.
In process with ``--varied-clients 100`` (MNIST): no varied client, with or without
re-takes, flagged by the monitor. The same run with ``--clients 400 --accounts-pool 1200
--k-accounts 10 --adaptive-sessions 10`` (541 s): the same 60 / 60 sessions; 0 of 36,000
honest queries flagged per model (95% bound 0.008%), 0 of 400 clients; accounts of 5
inputs all stopped before their last win (inputs won 10 / 2 of 300); the adaptive
HopSkipJump won 0 of 10 sessions at either noise (the bare model: 10 of 10 on digits, 0 of
10 on MNIST within L2 2).

refuse_flagged, measured 2026-12-07 in process (before the corner test), off -> on. Digits, ``--sessions 10 --k-accounts
10 --clients 10 --varied-clients 0`` (~1 min): evasion sessions detected 54/60 either way
(median first flag at query 14), won before lock-out 27 -> 26 of 60, the winning query
flagged in 2 -> 0 of them (wins at rows 4-41: FM01.decision 29-41 with its first flag at a
median of 48, FM01.square 5-17, ART Square 4-34); accounts won 36 -> 28 of 300 inputs (2 of
the 36 at a flagged query; ART Square accounts stopped 8 -> 10 of 10); the adaptive
HopSkipJump won 1/10 either way. MNIST, ``--sessions 3 --k-accounts 10 --varied-clients 100``
(~4 min): won 3 -> 3 of 18 sessions and 2 -> 2 of 300 account inputs, all at unflagged
queries. Honest (``--varied-clients 400`` digits, 100 MNIST): no client without re-takes had
a request refused; of held-out clients with 0-10% re-takes 94/400 (24/100) had >= 1 refused,
25/400 (12/100) >= 2, 4.0% (4.2%) of their requests and 5.6% of rows refused; lock-outs
unchanged. So it stays off by default. Through the guard (``--via-guard --only square``, 3
sessions): 36 requests refused with 403 similar_query, wins 3/9, all at unflagged queries.

    python benchmarks/bench_guard_detection.py [--mnist] [--full] [--via-guard] [--sessions 3] [--clients 40]
        [--inputs-per-account 5] [--varied-clients 100] [--monitor max_rows=500] [--domain]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

ART_ATTACKS = ("ART HopSkipJump", "ART Boundary", "ART Square", "ART Square eps 0.1", "ART KnockoffNets")
REDLINE_ATTACKS = ("redline FM01.decision", "redline FM01.square", "redline FM05.learning")


# -- one account's session -------------------------------------------------------------
def recorder_class():
    from redline.defences import Defence, emit

    class BatchRecorder(Defence):
        """Faces the client: notes where each batch starts in the session's stream of rows and,
        given a ``Success`` judge, the first row whose answer is a successful adversarial
        example (the attack had won from that row on, whatever the detector did later)."""

        name = "recorder"

        def __init__(self, judge=None, keep=False):
            self.sent = 0
            self.judge = judge
            self.succeeded_at = None
            self.keep = keep  # keep what the account was answered (a thief's training set)
            self.answered: list[tuple[np.ndarray, np.ndarray]] = []

        def transform_input(self, x):
            emit("recorder", "batch", start=self.sent)
            self.sent += len(x)
            return x

        def transform_output(self, x, scores):
            if self.judge is not None and self.succeeded_at is None:
                hit = self.judge.first_success(x, scores)
                if hit is not None:
                    self.succeeded_at = self.sent - len(x) + hit + 1
            if self.keep:
                self.answered.append((np.asarray(x).copy(), np.asarray(scores).copy()))
            return scores

    return BatchRecorder


def channel_class():
    from redline.defences import QueryRefused
    from redline.targets.base import Target

    class CarryOn(Target):
        """What a client does when one request is refused as too like its recent queries
        (``refuse_flagged``; a lock-out still ends the session): it takes no answer and goes on.
        An attack library needs *some* answer, so each refused row gets the last answer row
        the account received (uniform before any): to a score-based attack "no improvement",
        to a decision-based one the label it saw last. These stand-ins never count as wins
        (only answers the model gave are judged). Counts requests and the refused ones."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.spec, self.input_spec, self.n_classes = inner.spec, inner.input_spec, inner.n_classes
            self.capabilities, self.max_batch = inner.capabilities, inner.max_batch
            self.requests = self.rows = self.refused_requests = self.refused_rows = 0
            self.last = None

        def wrapped(self):
            return self.inner

        def _predict(self, x):
            self.requests += 1
            self.rows += len(x)
            try:
                out = np.asarray(self.inner.predict(x))
            except QueryRefused:
                self.refused_requests += 1
                self.refused_rows += len(x)
                if self.last is None:
                    probabilities = self.capabilities.outputs == "probabilities"
                    return np.full((len(x), self.n_classes), 1.0 / self.n_classes) if probabilities \
                        else np.zeros(len(x), int)
                return np.repeat(self.last[None], len(x), axis=0)
            if len(out):
                self.last = out[-1].copy()
            return out

    return CarryOn


class Success:
    """Whether a query is a successful evasion: the model's label differs from the true label
    of the nearest clean input (test or pool role), which lies within the attack's radius:
    L-inf <= ``eps_inf`` or L2 <= ``eps_l2``, in units of each feature's range. The clean
    input itself (distance 0) never counts, so a check's clean-accuracy rows are not wins."""

    def __init__(self, data, lower, upper, eps_inf, eps_l2):
        self.anchors = np.concatenate([data.x_test, data.x_pool]).reshape(len(data.x_test) + len(data.x_pool), -1)
        self.labels = np.concatenate([data.y_test, data.y_pool]).astype(int)
        self.lower = np.asarray(lower, np.float64)
        self.span = np.where(np.asarray(upper) - self.lower > 0, np.asarray(upper) - self.lower, 1.0)
        self.anchors = (self.anchors - self.lower) / self.span
        self.eps_inf, self.eps_l2 = eps_inf, eps_l2

    def first_success(self, x, scores):
        z = (np.asarray(x, np.float64).reshape(len(x), -1) - self.lower) / self.span
        labels = np.asarray(scores).argmax(axis=1) if np.asarray(scores).ndim == 2 else np.asarray(scores).astype(int)
        for i, row in enumerate(z):
            diff = self.anchors - row
            l2 = np.sqrt((diff * diff).sum(axis=1))
            j = int(l2.argmin())
            if not l2[j] > 1e-6 or labels[i] == self.labels[j]:
                continue
            if l2[j] <= self.eps_l2 or np.abs(diff[j]).max() <= self.eps_inf:
                return i
        return None


class Session:
    """One account: the model behind this account's detector twin (in process) or behind
    the real guard with this account's key (``guard`` given), and what happened."""

    def __init__(self, target, detector, state, client: str, guard=None, judge=None, monitor=None):
        from redline.defences import DefendedTarget

        self.recorder = recorder_class()(judge, keep=monitor is not None)
        self.guard = guard
        if guard is None:
            # the extraction monitor, when given, sits nearest the model: it needs the answers
            chain = [detector.for_client(client, state), self.recorder]
            if monitor is not None:
                chain.insert(0, monitor.for_client(client, state))
            self.defended = DefendedTarget(target, chain)
        else:
            self.client = guard.next_client()
            self.defended = DefendedTarget(guard.connect(self.client, target), [self.recorder])
        # a refused request (not a lock-out) is a missing answer: the client carries on
        self.defended = self.channel = channel_class()(self.defended)
        self.events: list[dict] = []
        self.wins: list[int | None] = []

    def run(self, attack) -> object:
        return self.run_inputs([attack])

    def run_inputs(self, attacks) -> object:
        """Run ``attacks`` one after another from this account (an attacker's several inputs);
        ``wins[j]`` is the row at which attack j had won (None: it never did). A refusal
        ends the session: the inputs not yet attacked are not won."""
        from redline.defences import collect_events
        from redline.errors import TargetError

        result = None
        with collect_events() as events:
            for attack in attacks:
                self.recorder.succeeded_at = None
                try:
                    result = attack(self.defended)
                except TargetError:  # a refusal (lock-out) ends the attack
                    result = None
                    self.wins.append(self.recorder.succeeded_at)
                    break
                self.wins.append(self.recorder.succeeded_at)
        self.wins += [None] * (len(attacks) - len(self.wins))
        if len(attacks) == 1:
            self.recorder.succeeded_at = self.wins[0]
        self.events = events if self.guard is None else self.guard.events_of(self.client, events)
        return result

    def _row_of(self, kind: str, nth: int = 1, defence: str = "query_detector") -> int | None:
        start, seen = 0, 0
        for event in self.events:
            if event["event"] == "batch":
                start = event["start"]
            elif event["event"] == kind and event.get("defence", defence) == defence:
                seen += 1
                if seen == nth:
                    return start + event["row"] + 1
        return None

    def monitor_flag(self) -> tuple[int | None, str | None]:
        """Rows sent up to the extraction monitor's first flag, and which test raised it."""
        at = self._row_of("flagged", defence="extraction_monitor")
        test = next((e.get("test") for e in self.events
                     if e["event"] == "flagged" and e.get("defence") == "extraction_monitor"), None)
        return at, test

    def flagged_rows(self) -> set[int]:
        """The session's rows (counted from 1) that the query detector flagged."""
        start, rows = 0, set()
        for event in self.events:
            if event["event"] == "batch":
                start = event["start"]
            elif event["event"] == "flagged" and event.get("defence", "query_detector") == "query_detector":
                rows.add(start + event["row"] + 1)
        return rows

    @property
    def won_at_flagged(self) -> bool | None:
        """Whether the query that won was itself flagged (None: never won)."""
        return None if self.succeeded_at is None else self.succeeded_at in self.flagged_rows()

    @property
    def answered_rows(self) -> int:
        return sum(len(x) for x, _ in self.recorder.answered)

    def flag_at(self, nth: int) -> int | None:
        """Rows sent up to the ``nth`` flagged query: where ``lockout_after: nth`` would lock
        the account out (the session is the same up to there)."""
        return self._row_of("flagged", nth)

    @property
    def succeeded_at(self) -> int | None:
        return self.recorder.succeeded_at

    @property
    def locked_at(self) -> int | None:
        """Rows sent up to the lock-out, by whichever defence locked the account."""
        found = [r for r in (self._row_of("locked_out"), self._row_of("locked_out", defence="extraction_monitor"))
                 if r is not None]
        return min(found) if found else None

    @property
    def first_flag_at(self) -> int | None:
        return self._row_of("flagged")

    @property
    def detected(self) -> tuple[int | None, str | None]:
        """Rows sent up to the first flag of any defence, and which one raised it (the query
        detector, or the extraction monitor's test when it sits in the session's chain)."""
        found = [(at, "query detector") for at in (self.first_flag_at,) if at is not None]
        at, test = self.monitor_flag()
        if at is not None:
            found.append((at, f"extraction monitor ({test})"))
        return min(found) if found else (None, None)

    @property
    def sent(self) -> int:
        return self.recorder.sent

    def flagged(self, defence: str = "query_detector") -> int:
        return sum(e["event"] == "flagged" and e.get("defence", defence) == defence for e in self.events)


# -- the real guard on loopback (--via-guard) ------------------------------------------------
class GuardUnderTest:
    """``redline guard`` (uvicorn in a thread) in front of a ProbabilityEndpoint, with ``accounts``
    client keys and a policy of one ``query_detector`` with its defaults."""

    def __init__(self, target, folder, accounts: int, detector_params: dict, monitor_params: dict | None = None):
        import secrets
        import socket
        import threading

        import uvicorn
        import yaml
        from endpoint import ProbabilityEndpoint

        from redline.guard.runtime import GuardOptions
        from redline.guard.server import build, uvicorn_config

        def answer(x):
            with target.ledger.evaluating():  # the model's own rows, not the attack's
                return target.predict(x)

        self.model = ProbabilityEndpoint(answer)
        self.keys = {f"acct{i}": secrets.token_hex(16) for i in range(accounts)}
        self.free = list(self.keys)
        (folder / "keys.txt").write_text("".join(f"{n}:{k}\n" for n, k in self.keys.items()))
        spec = target.input_spec
        policy = {"version": 1, "state": "memory", "limits": {"max_batch": 1024},
                  "input": {"shape": list(spec.shape), "lower": float(spec.lower), "upper": float(spec.upper)},
                  "defences": [{"query_detector": dict(detector_params)}]}
        if monitor_params is not None:  # a request meets the query detector first, the monitor next to the model
            policy["defences"].append({"extraction_monitor": dict(monitor_params)})
        (folder / "guard.yaml").write_text(yaml.safe_dump(policy))
        self.audit_path = folder / "audit.jsonl"
        built = build(GuardOptions(policy_path=folder / "guard.yaml", keys_path=folder / "keys.txt",
                                   upstream=self.model.url, reload_interval=0.0), audit_path=self.audit_path)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/predict"
        self.server = uvicorn.Server(uvicorn_config(built.app, "127.0.0.1", port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the guard did not start within 20 s")
            time.sleep(0.05)

    def next_client(self) -> str:
        if not self.free:
            raise RuntimeError("more sessions than guard accounts: raise --accounts-pool")
        return self.free.pop(0)

    def connect(self, client: str, model):
        return guard_client_class()(self.url, self.keys[client], model)

    def events_of(self, client: str, local: list[dict]) -> list[dict]:
        """The session's events: its own batch marks (client side), each followed by what the
        guard's defences recorded for that request (the audit log, in the client's order)."""
        import json

        records = [r for r in map(json.loads, self.audit_path.read_text().splitlines()) if r.get("client") == client]
        batches = [e for e in local if e["event"] == "batch"]
        merged = []
        for batch, record in zip(batches, records):
            merged.append(batch)
            merged.extend(record.get("events") or [])
        return merged

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.model.close()


def guard_client_class():
    from redline.defences import LockedOut, QueryRefused, RateLimited
    from redline.errors import TargetError
    from redline.targets.base import Target

    class GuardClient(Target):
        """One account's connection to the guard: redline's protocol with an API key, no
        retries; a 403 is a LockedOut, a 429 a RateLimited, as in process."""

        def __init__(self, url, key, model):
            super().__init__()
            self.url, self.key = url, key
            self.spec = "guard:" + model.spec
            self.input_spec, self.n_classes, self.capabilities = model.input_spec, model.n_classes, model.capabilities
            self.max_batch = 1024

        def _predict(self, x):
            import json
            import urllib.error
            import urllib.request

            body = json.dumps({"inputs": np.asarray(x, np.float64).tolist()}).encode()
            request = urllib.request.Request(self.url, body, {"Content-Type": "application/json", "X-API-Key": self.key})
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    return np.asarray(json.loads(answer.read())["probabilities"])
            except urllib.error.HTTPError as exc:
                reason = json.loads(exc.read() or b"{}").get("reason", "")
                if exc.code == 403 and reason == "similar_query":
                    raise QueryRefused(f"guard: {reason}") from None
                if exc.code == 403:
                    raise LockedOut(f"guard: {reason}") from None
                if exc.code == 429:
                    raise RateLimited(f"guard: {reason}") from None
                raise TargetError(f"guard answered HTTP {exc.code} ({reason})") from None

    return GuardClient




# -- attacks ------------------------------------------------------------------------------
def art_blackbox(defended, clip=None, transform=None):
    from art.estimators.classification import BlackBoxClassifier

    if clip is None:  # each feature's own range (images: [0, 1])
        lower, upper = defended.input_spec.feature_bounds()
        shape = tuple(defended.input_spec.shape)
        clip = (np.reshape(lower, shape).astype(np.float32), np.reshape(upper, shape).astype(np.float32))
        if np.ptp(clip[0]) == 0 and np.ptp(clip[1]) == 0:
            clip = (float(clip[0].flat[0]), float(clip[1].flat[0]))

    def predict(x):
        x = np.asarray(x, np.float32)
        return defended.predict(transform(x) if transform else x)

    return BlackBoxClassifier(predict, tuple(defended.input_spec.shape), defended.n_classes, clip_values=clip)


def art_forwarding_module(defended):
    """ART's Square attack takes a neural-network estimator only: a torch module whose forward
    asks the defended model (no gradients are ever taken)."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    class Forward(torch.nn.Module):
        def forward(self, t):
            p = defended.predict(t.detach().cpu().numpy().astype(np.float32))
            return torch.log(torch.as_tensor(p, dtype=torch.float32).clamp_min(1e-12))

    return PyTorchClassifier(Forward(), loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(defended.input_spec.shape),
                             nb_classes=defended.n_classes, clip_values=(0.0, 1.0))


def thief_classifier(shape, n_classes, seed):
    import torch
    from art.estimators.classification import PyTorchClassifier

    torch.manual_seed(seed)
    d = int(np.prod(shape))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Linear(64, n_classes))
    return PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), 1e-2),
                             input_shape=tuple(shape), nb_classes=n_classes)


def attack_factory(name, data, x0, seed, budget, mnist, n_inputs=4):
    """``attack(defended)`` for session ``seed`` on input ``x0`` (one row with its batch axis;
    a redline FM01 check picks its own ``n_inputs`` inputs by ``seed``)."""
    from redline.checks import all_checks

    checks = all_checks()
    if name == "ART HopSkipJump":
        from art.attacks.evasion import HopSkipJump
        return lambda t: HopSkipJump(art_blackbox(t), max_iter=10, max_eval=200, init_eval=20,
                                     verbose=False).generate(x0)
    if name == "ART Boundary":
        from art.attacks.evasion import BoundaryAttack
        return lambda t: BoundaryAttack(art_blackbox(t), targeted=False, max_iter=50, num_trial=10,
                                        sample_size=10, init_size=20, verbose=False).generate(x0)
    if name.startswith("ART Square"):
        from art.attacks.evasion import SquareAttack
        eps = 0.1 if name.endswith("0.1") else 0.3 if mnist else 0.25
        return lambda t: SquareAttack(art_forwarding_module(t), eps=eps, max_iter=300,
                                      nb_restarts=1, verbose=False).generate(x0)
    if name == "ART KnockoffNets":
        from art.attacks.extraction import KnockoffNets
        rng = np.random.default_rng(seed)
        pool = data.x_pool[rng.permutation(len(data.x_pool))[:budget]].astype(np.float32)

        def knockoff(t):
            thief = thief_classifier(t.input_spec.shape, t.n_classes, seed)
            return KnockoffNets(art_blackbox(t), batch_size_fit=64, batch_size_query=64, nb_epochs=5,
                                nb_stolen=len(pool), sampling_strategy="random", verbose=False,
                                use_probability=True).extract(pool, thieved_classifier=thief)
        return knockoff
    if name == "JbDA":
        return lambda t: jbda(t, data, seed, budget)
    check_id = name.split()[-1]
    params = {"FM01.decision": {"n_inputs": n_inputs}, "FM01.square": {"n_inputs": n_inputs},
              "FM05.learning": {"rounds": 2, "epochs": 2, "final_epochs": 3, "n_uniform": 100}}[check_id]
    check = checks[check_id](**params)
    return lambda t: check(t, data, budget=budget, seed=seed)


def run_attacks(target, data, detector, state, sessions, budget, mnist, only, full, guard=None, judge=None,
                monitor=None):
    rng = np.random.default_rng(0)
    with target.ledger.evaluating():
        correct = np.flatnonzero(target.predict_labels(data.x_test.astype(np.float32)) == data.y_test)
    image = data.modality == "image"
    rows = {}
    for name in (*REDLINE_ATTACKS, *ART_ATTACKS):
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        if name.startswith("ART Square") and not image:
            continue  # ART's Square attack takes images (4-d inputs) only
        started = time.perf_counter()
        results = []
        # model stealing trains a copy per session: the slowest, so the default run does one
        for s in range(sessions if "FM05" not in name or full else 1):
            i = int(correct[rng.integers(len(correct))])  # an input the model gets right
            x0 = data.x_test[i:i + 1].astype(np.float32)
            _seed_globals(1000 * s + len(name))  # ART and torch draw from the global generators
            evasion = not ("FM05" in name or "Knockoff" in name)
            session = Session(target, detector, state, f"{name}#{s}", guard, judge if evasion else None,
                              monitor=monitor if evasion else None)
            session.run(attack_factory(name, data, x0, seed=s, budget=budget, mnist=mnist))
            results.append(session)
        rows[name] = (results, time.perf_counter() - started)
    return rows


def jbda(defended, data, seed, budget, seeds=10, step=0.1):
    """Papernot et al. (2017)'s Jacobian-based dataset augmentation, the attack PRADA was built
    against: ``seeds`` pool rows (one per class where it can), then rounds that query every
    new row, train a surrogate on all answers and add each row moved by ``step`` (of the input
    range) along the sign of the surrogate's gradient, doubling the set until ``budget``."""
    from redline.checks.extraction.query_selection import jacobian_step
    from redline.util.surrogates import build_surrogate, fit_surrogate

    rng = np.random.default_rng(seed)
    spec = defended.input_spec
    pool, labels = data.x_pool.astype(np.float32), np.asarray(data.y_pool).astype(int)
    picks = [int(rng.choice(np.flatnonzero(labels == c))) for c in np.unique(labels)][:seeds]
    new = pool[picks]
    xs, answers = [], []
    surrogate = build_surrogate(spec.shape, defended.n_classes, data.modality, pool[picks], seed=seed)
    while len(new):
        answers.append(np.asarray(defended.predict(new)))
        xs.append(new)
        owned = np.concatenate(xs)
        fit_surrogate(surrogate, owned, np.concatenate(answers), epochs=10, seed=seed)
        room = budget - len(owned)
        new = jacobian_step(surrogate, owned, min(len(owned), room), step * float(spec.upper - spec.lower), rng,
                            spec.lower, spec.upper) if room > 0 else new[:0]
    return surrogate


def run_account_sessions(target, data, detector, state, accounts, k, budget, mnist, only, guard=None, judge=None):
    """Evasion as an attacker runs it: each account attacks ``k`` inputs one after another
    (a redline FM01 check: ``k`` runs of one input each, every run with its own clean-accuracy
    rows), on one history. Returns {attack: (sessions, seconds)}."""
    rng = np.random.default_rng(1)
    with target.ledger.evaluating():
        correct = np.flatnonzero(target.predict_labels(data.x_test.astype(np.float32)) == data.y_test)
    rows = {}
    for name in (*REDLINE_ATTACKS, *ART_ATTACKS):
        if "FM05" in name or "Knockoff" in name or (only and not any(o.lower() in name.lower() for o in only)):
            continue
        if name.startswith("ART Square") and data.modality != "image":
            continue
        started = time.perf_counter()
        sessions = []
        for a in range(accounts):
            picks = [int(i) for i in correct[rng.permutation(len(correct))[:k]]]
            attacks = []
            for j, i in enumerate(picks):
                factory = attack_factory(name, data, data.x_test[i:i + 1].astype(np.float32), seed=500 + a * k + j,
                                         budget=budget, mnist=mnist, n_inputs=1)

                def attack(t, factory=factory, seed=500 + a * k + j):
                    _seed_globals(seed)
                    return factory(t)
                attacks.append(attack)
            session = Session(target, detector, state, f"{name}#acct{a}", guard, judge)
            session.run_inputs(attacks)
            sessions.append(session)
        rows[name] = (sessions, time.perf_counter() - started)
    return rows


def account_outcome(session) -> str:
    """What one k-input account achieved: 'stopped' (locked out before its last input was won),
    'late' (every input won before the lock-out), 'escaped' (every input won, never locked out),
    'failed' (never locked out, but some input never won: the attack fell short by itself)."""
    wins = session.wins
    locked = session.locked_at
    if all(w is not None for w in wins):
        last = max(wins)
        return "escaped" if locked is None else "late" if locked > last else "stopped"
    return "stopped" if locked is not None else "failed"


def run_stealing_sessions(target, data, detector, monitor, state, sessions, budget, only, full):
    """Model stealing from one account each, behind the query detector and the extraction
    monitor: KnockoffNets (random pool rows) and redline's FM05.learning (pool rows picked by
    the copy, 20% mixup blends, then the check's own fidelity rows). For each: rows to the
    monitor's flag, rows answered, and the fidelity of the copy the thief can train on what it
    was answered (the same thief network and 20 epochs as the bare-model curve)."""
    rows = {}
    for name in ("redline FM05.learning", "ART KnockoffNets", "JbDA"):
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        started = time.perf_counter()
        results = []
        for s in range(sessions if "FM05" not in name or full else 1):
            _seed_globals(1000 * s + len(name))
            session = Session(target, detector, state, f"{name}#steal{s}", monitor=monitor)
            session.run(attack_factory(name, data, None, seed=s, budget=budget, mnist=False))
            results.append((session, copy_fidelity(target, data, session.recorder.answered, s)))
        rows[name] = (results, time.perf_counter() - started)
    return rows


def copy_fidelity(target, data, answered, seed) -> float:
    """Label agreement with the model on the test role of a copy trained on ``answered``
    (the rows an account got answers to, with those answers)."""
    if not answered:
        return float("nan")
    x = np.concatenate([a for a, _ in answered]).astype(np.float32).reshape(-1, *target.input_spec.shape)
    y = np.concatenate([b for _, b in answered])
    if y.ndim == 1:
        y = np.eye(target.n_classes)[y.astype(int)]
    _seed_globals(seed)
    thief = thief_classifier(target.input_spec.shape, target.n_classes, seed)
    thief.fit(x, y, batch_size=64, nb_epochs=20, verbose=False)
    with target.ledger.evaluating():
        truth = target.predict_labels(data.x_test.astype(np.float32))
    return float((thief.predict(data.x_test.astype(np.float32)).argmax(axis=1) == truth).mean())


def run_stealing(target, data, budgets, sessions):
    """KnockoffNets on the bare model with ``budget`` pool rows (what ``rows_per_day: budget``
    lets one account take in a day): fidelity of the stolen copy (agreement with the model's
    labels on the test role), median over sessions, and the test accuracy of the copy."""
    from art.attacks.extraction import KnockoffNets

    with target.ledger.evaluating():
        truth = target.predict_labels(data.x_test.astype(np.float32))
    out = []
    for budget in budgets:
        if budget > len(data.x_pool):
            continue
        fidelity, accuracy = [], []
        for s in range(sessions):
            rng = np.random.default_rng(s)
            pool = data.x_pool[rng.permutation(len(data.x_pool))[:budget]].astype(np.float32)
            _seed_globals(s)
            thief = thief_classifier(target.input_spec.shape, target.n_classes, s)
            with target.ledger.evaluating():
                stolen = KnockoffNets(art_blackbox(target), batch_size_fit=64, batch_size_query=64, nb_epochs=20,
                                      nb_stolen=budget, sampling_strategy="random", verbose=False,
                                      use_probability=True).extract(pool, thieved_classifier=thief)
            labels = stolen.predict(data.x_test.astype(np.float32)).argmax(axis=1)
            fidelity.append(float((labels == truth).mean()))
            accuracy.append(float((labels == data.y_test).mean()))
        out.append((budget, float(np.median(fidelity)), float(np.median(accuracy))))
    return out


def _seed_globals(seed: int) -> None:
    import random

    import torch

    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    _seed_art_generators()


def _seed_art_generators() -> None:
    """ART's HopSkipJump and Boundary attacks draw their starting points from an unseeded
    ``np.random.RandomState()``, so their sessions (and the adaptive attacker's) differed from
    run to run. Their modules get a numpy whose unseeded RandomState takes its seed from the
    seeded global generator."""
    import types

    from art.attacks.evasion import boundary, hop_skip_jump

    random = types.ModuleType("numpy.random")
    random.__dict__.update(np.random.__dict__)
    random.RandomState = lambda seed=None: np.random.RandomState(
        int(np.random.randint(2**31)) if seed is None else seed)
    shim = types.ModuleType("numpy")
    shim.__dict__.update(np.__dict__)
    shim.random = random
    for module in (hop_skip_jump, boundary):
        module.np = shim


# -- honest traffic ---------------------------------------------------------------------
def corrupt(x, rng, donors=None):
    """One common corruption of rows x. Images (n, c, h, w) in [0, 1]: noise, blur or
    brightness. Tables (n, d): Gaussian noise of 2-8% of each feature's range (over
    ``donors``, the honest data), or one answer replaced by another respondent's answer to
    that question (a misread or mistyped form field)."""
    if x.ndim != 4:
        lower, upper = donors.min(axis=0), donors.max(axis=0)
        if rng.random() < 0.5:
            return np.clip(x + rng.normal(0, rng.uniform(0.02, 0.08), x.shape) * (upper - lower), lower, upper)
        out = x.copy()
        feature = int(rng.integers(x.shape[1]))
        out[:, feature] = donors[rng.integers(len(donors), size=len(x)), feature]
        return out
    kind = rng.integers(3)
    if kind == 0:
        return np.clip(x + rng.normal(0, rng.uniform(0.02, 0.08), x.shape), 0, 1)
    if kind == 1:
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = x.shape[-2:]
        box = sum(padded[..., i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
        return np.clip(0.5 * x + 0.5 * box, 0, 1)
    return np.clip(x + rng.uniform(-0.2, 0.2), 0, 1)


def honest_streams(x, clients, per_client, seed):
    """Per client: its own inputs (no input twice unless as an exact repeat), some corrupted,
    10% exact repeats of what it sent before, cut into batches of 1-16 rows."""
    rng = np.random.default_rng(seed)
    streams = []
    for _ in range(clients):
        fresh = int(per_client * 0.9)
        picked = x[rng.permutation(len(x))[:fresh]].astype(np.float64)
        hit = rng.random(fresh) < 0.3
        for i in np.flatnonzero(hit):
            picked[i:i + 1] = corrupt(picked[i:i + 1], rng, x)
        stream = list(picked.astype(np.float32))
        insert_retries(stream, per_client - fresh, rng)
        streams.append(in_batches(stream, 16, rng))
    return streams


def insert_retries(stream: list, count: int, rng) -> None:
    """``count`` exact retries of earlier queries of ``stream``, each at a random later place."""
    for _ in range(count):
        at = int(rng.integers(1, len(stream) + 1))
        stream.insert(at, stream[int(rng.integers(at))].copy())


def in_batches(stream: list, most: int, rng) -> list:
    """``stream`` cut in order into batches of 1 to ``most`` rows."""
    batches, i = [], 0
    while i < len(stream):
        n = int(rng.integers(1, most + 1))
        batches.append(np.stack(stream[i:i + n]))
        i += n
    return batches


def run_honest(target, detector, state, x, clients, per_client, seed, label, guard=None, decide=True):
    from redline.defences import MemoryState

    scores, flags, locked_clients, repeats = [], [], 0, 0
    refused = []  # per client: (requests refused, requests sent)
    for c, batches in enumerate(honest_streams(x, clients, per_client, seed)):
        client_scores = []

        def replay(t, batches=batches):
            for batch in batches:
                t.predict(batch)

        # every query's score, from a twin that keeps the same history in a store of its own
        shadow = detector.for_client("shadow", MemoryState())
        for batch in batches:
            client_scores.extend(shadow.score(batch))
        s = np.asarray(client_scores)
        repeats += int(np.isnan(s).sum())
        scores.extend(s[~np.isnan(s)])
        if decide:  # the client's real traffic, through its own detector twin (or the guard)
            session = Session(target, detector, state, f"{label}-client{c}", guard)
            session.run(replay)
            flags.append(session.flagged())
            locked_clients += session.locked_at is not None
            refused.append(_refusals(session.channel))
    return np.asarray(scores), np.asarray(flags, int), locked_clients, repeats, refused


def varied_streams(x, clients, seed, smallest=10, largest=500, retakes=0.1):
    """Honest clients unlike one another: a client sends a log-uniform number of rows from
    ``smallest`` to ``largest`` (at most the rows there are), 0-30% of them exact repeats,
    10-60% of its inputs under a common corruption, and 0-10% (``retakes``) re-takes (an input it sent
    before, sent again under a fresh corruption: a photo taken twice); batches of 1-32."""
    rng = np.random.default_rng(seed)
    streams = []
    for _ in range(clients):
        size = int(np.exp(rng.uniform(np.log(smallest), np.log(largest + 1))))
        share_repeat, share_corrupt, share_retake = rng.uniform(0, 0.3), rng.uniform(0.1, 0.6), rng.uniform(0, retakes)
        fresh = max(1, min(len(x), int(size * (1 - share_repeat - share_retake))))
        picked = x[rng.permutation(len(x))[:fresh]].astype(np.float64)
        for i in np.flatnonzero(rng.random(fresh) < share_corrupt):
            picked[i:i + 1] = corrupt(picked[i:i + 1], rng, x)
        stream = list(picked.astype(np.float32))
        for _ in range(int(size * share_retake)):
            at = int(rng.integers(1, len(stream) + 1))
            source = x[rng.integers(len(x))] if not fresh else stream[int(rng.integers(at))]
            stream.insert(at, corrupt(np.asarray(source, np.float64)[None], rng, x)[0].astype(np.float32))
        insert_retries(stream, max(0, size - len(stream)), rng)
        streams.append(in_batches(stream, 32, rng))
    return streams


def run_population(target, detector, monitor, state, streams, label):
    """Honest clients through the query detector and the extraction monitor, one account
    each. Per client: rows sent, query-detector flags, extraction-monitor flags (and the
    test that raised the first), locked out or not, and the least Shapiro-Wilk W its
    distances reached once there were ``min_queries`` of them (the monitor's calibration)."""
    from redline.defences import MemoryState
    from redline.defences.extraction_monitor import ExtractionMonitor, shapiro_w

    shadow_params = {**monitor.get_params(), "shapiro_below": 0.5, "max_rows": None}
    out = []
    for c, batches in enumerate(streams):
        shadow = ExtractionMonitor(**shadow_params)
        shadow.check(target)
        shadow = shadow.for_client("shadow", MemoryState())
        least = np.nan
        for batch in batches:
            with target.ledger.evaluating():
                answer = target.predict(batch)
            shadow.observe(batch, answer)
            recent = np.frombuffer(shadow._store().get(shadow._key("dw")) or b"", "<f4")  # PRADA's window
            if len(recent) >= monitor.min_queries:
                w = shapiro_w(recent)
                least = w if np.isnan(least) else min(least, w)

        def replay(t, batches=batches):
            for batch in batches:
                t.predict(batch)

        session = Session(target, detector, state, f"{label}-client{c}", monitor=monitor)
        session.run(replay)
        _, test = session.monitor_flag()
        out.append({"rows": sum(map(len, batches)), "qd_flags": session.flagged(),
                    "monitor_flags": session.flagged("extraction_monitor"), "monitor_test": test,
                    "locked": session.locked_at is not None, "least_w": least,
                    "refused": _refusals(session.channel)})
    return out


# -- adaptive attacker ----------------------------------------------------------------------
def run_adaptive(target, data, detector, state, sessions, accounts, noise, eps_l2, mnist, guard=None):
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    from redline.defences import LockedOut, collect_events

    rng = np.random.default_rng(7)
    outcome = {"any_locked": 0, "all_locked": 0, "success": 0, "bare_success": 0, "queries": [],
               "l2": [], "bare_l2": []}
    with target.ledger.evaluating():
        correct = np.flatnonzero(target.predict_labels(data.x_test.astype(np.float32)) == data.y_test)
    for s in range(sessions):
        i = int(correct[rng.integers(len(correct))])
        x0 = data.x_test[i:i + 1].astype(np.float32)
        _seed_globals(s)
        attacker = NoisyAccounts([Session(target, detector, state, f"adaptive{noise}-{s}-acct{a}", guard)
                                  for a in range(accounts)], noise, np.random.default_rng(100 + s))
        clf = BlackBoxClassifier(attacker.predict, tuple(target.input_spec.shape), target.n_classes,
                                 clip_values=(0.0, 1.0))
        with collect_events():
            try:
                adv = HopSkipJump(clf, max_iter=10, max_eval=200, init_eval=20, verbose=False).generate(x0)
            except LockedOut:
                adv = None
        if len(attacker.live) < accounts:
            outcome["any_locked"] += 1
        if not attacker.live:
            outcome["all_locked"] += 1
        outcome["queries"].append(attacker.sent)
        found = np.inf if adv is None else _adversarial_l2(target, adv, x0, data.y_test[i])
        _seed_globals(s)
        bare = HopSkipJump(art_blackbox(target), max_iter=10, max_eval=200, init_eval=20, verbose=False).generate(x0)
        bare_found = _adversarial_l2(target, bare, x0, data.y_test[i])
        outcome["success"] += found <= eps_l2
        outcome["bare_success"] += bare_found <= eps_l2
        outcome["l2"].append(found)
        outcome["bare_l2"].append(bare_found)
    return outcome


class NoisyAccounts:
    """The adaptive attacker's query channel: each batch gets uniform noise of +-``noise`` per
    feature and a random brightness shift, then goes to the next of its accounts in turn;
    an account that is locked out is dropped."""

    def __init__(self, sessions, noise, rng):
        self.sessions, self.noise, self.rng = sessions, noise, rng
        self.live = list(range(len(sessions)))
        self.turn = self.sent = 0

    def transform(self, x):
        shift = self.rng.uniform(-self.noise, self.noise, size=(len(x),) + (1,) * (x.ndim - 1))
        return np.clip(x + self.rng.uniform(-self.noise, self.noise, x.shape) + shift, 0, 1).astype(np.float32)

    def predict(self, x):
        from redline.defences import LockedOut

        x = self.transform(np.asarray(x, np.float32))
        while self.live:
            account = self.live[self.turn % len(self.live)]
            self.turn += 1
            try:
                out = self.sessions[account].defended.predict(x)
                self.sent += len(x)
                return out
            except LockedOut:
                self.live.remove(account)
        raise LockedOut("every account is locked out")


def _adversarial_l2(target, adv, x0, y) -> float:
    """L2 distance of ``adv`` from ``x0`` if the bare model misclassifies it, else infinity."""
    with target.ledger.evaluating():
        label = int(target.predict_labels(np.asarray(adv, np.float32))[0])
    return float(np.linalg.norm((adv - x0).ravel())) if label != int(y) else np.inf


# -- report -------------------------------------------------------------------------------
def median_text(values):
    values = [v for v in values if v is not None]
    return f"{np.median(values):.0f}" if values else "-"


# radius of a successful evasion per model, in units of each feature's range: (L-inf, L2)
RADII = {"mnist": (0.3, 2.0), "digits": (0.25, 1.5), "tabular": (0.1, 0.5)}


def load_model(model):
    """A zoo model and its data, or ``breast_cancer_mlp``: a small scikit-learn MLP fitted
    here on builtin:breast_cancer's train role (the zoo has no breast-cancer model)."""
    from redline import zoo

    if model != "breast_cancer_mlp":
        return zoo.load_target(model), zoo.load_data_for(model)
    from sklearn.neural_network import MLPClassifier

    from redline.data.loaders import load_data
    from redline.targets.sklearn import SklearnTarget
    from redline.zoo.build import input_spec_for

    data = load_data("builtin:breast_cancer")
    mlp = MLPClassifier((32,), max_iter=2000, random_state=0).fit(data.x_train, data.y_train)
    return SklearnTarget(mlp, input_spec=input_spec_for(data), n_classes=2, spec=model), data


# Detector settings of a table's policy, chosen on its calibration traffic (the test role) only:
# at the image defaults (8 levels) honest breast-cancer rows score up to 0.68 (3% of queries
# flagged), and survey rows that differ in one answer look like probes (7% flagged).
TABLE_SETTINGS = {"breast_cancer_mlp": {"levels": 16}, "fair_logreg": {"levels": 32, "window": 8}}


def bench(model, args):
    from redline.defences import MemoryState
    from redline.defences.query_detector import QueryDetector

    target, data = load_model(model)
    mnist = model.startswith("mnist")
    args = argparse.Namespace(**{**vars(args), "detector": {**TABLE_SETTINGS.get(model, {}), **args.detector}})
    detector = QueryDetector(**args.detector)
    detector.check(target)
    state = MemoryState()
    if args.domain:
        args = argparse.Namespace(**{**vars(args), "monitor": {**args.monitor, "reference": domain_reference(model, data)}})
    print(f"\n== {model}: QueryDetector({', '.join(f'{k}={v}' for k, v in detector.get_params().items())})")

    guard = None
    if args.via_guard:
        import tempfile
        from pathlib import Path

        guard = GuardUnderTest(target, Path(tempfile.mkdtemp(prefix="bench-guard-")), args.accounts_pool, args.detector,
                               args.monitor if args.domain else None)
        print(f"via the guard: {guard.url} (policy: query_detector {args.detector or 'with its defaults'}"
              f"{f', extraction_monitor {args.monitor}' if args.domain else ''}, state: memory) "
              f"in front of {guard.model.url}")
    try:
        _bench_traffic(target, data, detector, state, mnist, args, guard)
    finally:
        if guard is not None:
            guard.close()


def _bench_traffic(target, data, detector, state, mnist, args, guard):
    started = time.perf_counter()
    # the calibration set only needs scores: it never goes through the guard
    calibration, *_ = run_honest(target, detector, state, data.x_test, args.clients, args.queries, 1, "calib",
                                  decide=False)
    scores, flags, locked_clients, repeats, refused = run_honest(
        target, detector, state, data.x_pool, args.clients, args.queries, 2, "honest", guard)
    print(f"calibration traffic (test role, {len(calibration)} scored queries): max score {calibration.max():.3f}, "
          f"99.9th percentile {np.quantile(calibration, 0.999):.3f}; threshold {detector.threshold}")
    flagged = int((scores >= detector.threshold).sum())  # the same decisions the clients' twins made
    upper = _rule_of_three(flagged, len(scores))
    print(f"honest traffic (pool role, held out from tuning): {args.clients} clients, {len(scores)} scored queries "
          f"(+{repeats} exact repeats, not scored), max score {scores.max():.3f}")
    print(f"  false positives per query: {flagged}/{len(scores)} = {flagged / len(scores):.4%} "
          f"(95% upper bound {upper:.3%}); clients with >= 1 / >= 2 / >= 3 flags (= locked out at lockout_after "
          f"1 / 2 / 3{', unchained' if detector.chained else ''}): {(flags >= 1).sum()} / {(flags >= 2).sum()} / {(flags >= 3).sum()} of {args.clients} "
          f"(95% upper bound per client with 0: {_rule_of_three(0, args.clients):.2%}); locked out: "
          f"{locked_clients}/{args.clients}   [{time.perf_counter() - started:.0f} s]")
    if detector.refuse_flagged:
        print(f"  refused requests (refuse_flagged): {_refused_text(refused)}")

    kind = "mnist" if mnist else "digits" if data.modality == "image" else "tabular"
    eps_inf, eps_l2 = RADII[kind]
    lower, upper_b = target.input_spec.feature_bounds()
    judge = Success(data, lower, upper_b, eps_inf, eps_l2)
    monitor = None
    if args.domain and guard is None:
        from redline.defences.extraction_monitor import ExtractionMonitor

        monitor = ExtractionMonitor(**args.monitor)
        monitor.check(target)
        print(f"evasion sessions also behind ExtractionMonitor({', '.join(f'{k}={v}' for k, v in monitor.get_params().items())})")
    rows = run_attacks(target, data, detector, state, args.sessions, args.budget, mnist, args.only, args.full,
                       guard, judge, monitor)
    print(f"\nqueries counted from the session's first row; 'won' = the first query that was a successful evasion "
          f"(label != the nearest clean input's, within L-inf {eps_inf} or L2 {eps_l2} of it, in feature-range units)")
    # The session ends at its lock-out: later flags are never seen. Unchained, the lock-out is
    # flag ``lockout_after``; chained, a flag that does not chain is not counted, so the
    # lock-out comes at that flag or later, and flag k <= lockout_after is where an unchained
    # detector would have locked the same session out (the traffic is the same up to there).
    last = int(detector.lockout_after)
    heads = " ".join(f"{f'flag {k}':>9s}" for k in range(1, last + 1))
    print(f"{'attack':24s} {heads} {'lock':>9s} {'won at':>7s} {'sent':>6s} {'s':>4s}  "
          f"per session: won/flag 1/.../flag {last}/lock-out (- = never)")
    for name, (sessions, seconds) in rows.items():
        n = len(sessions)

        def col(nth, sessions=sessions, n=n):
            at = [sess.flag_at(nth) for sess in sessions]
            return f"{sum(a is not None for a in at)}/{n}@{median_text(at)}"

        detail = "  ".join("/".join(_dash(v) for v in [sess.succeeded_at] + [sess.flag_at(k) for k in range(1, last + 1)]
                                    + [sess.locked_at]) for sess in sessions)
        lock = [sess.locked_at for sess in sessions]
        lock = f"{sum(a is not None for a in lock)}/{n}@{median_text(lock)}"
        print(f"{name:24s} {' '.join(f'{col(k):>9s}' for k in range(1, last + 1))} {lock:>9s} "
              f"{median_text([sess.succeeded_at for sess in sessions]):>7s} "
              f"{median_text([sess.sent for sess in sessions]):>6s} {seconds:4.0f}  {detail}")
    evasion = [sess for name, (ss, _) in rows.items() if "Knockoff" not in name and "FM05" not in name for sess in ss]
    _report_detection(rows, detector)
    outcomes = [(f"lockout_after {nth}" + (", unchained" if detector.chained else ""),
                 [(sess.flag_at(nth), sess.succeeded_at) for sess in evasion]) for nth in range(1, last + 1)]
    if detector.chained:
        outcomes.append((f"lockout_after {last}, chained (this run)",
                         [(sess.locked_at, sess.succeeded_at) for sess in evasion]))
    for label, at in outcomes:
        print(f"  {label}: of {len(evasion)} evasion sessions, locked out before any win "
              f"{sum(f is not None and (w is None or f <= w) for f, w in at)}, locked out after a win "
              f"{sum(f is not None and w is not None and f > w for f, w in at)}, never locked out and won "
              f"{sum(f is None and w is not None for f, w in at)}, never locked out and never won "
              f"{sum(f is None and w is None for f, w in at)}")

    if args.inputs_per_account > 1:
        _report_accounts(target, data, detector, state, mnist, args, guard, judge)
    if args.steal_sessions_monitor and guard is None:
        _report_stealing(target, data, detector, state, args)
    if args.varied_clients and guard is None:
        _report_varied(target, data, detector, state, args)

    if args.steal_budgets:
        curve = run_stealing(target, data, args.steal_budgets, args.steal_sessions)
        print("model stealing (KnockoffNets, pool inputs, bare model) -- what rows_per_day bounds a thief to per "
              "account and day: " + "; ".join(f"{b} rows: fidelity {f:.1%}, copy's test accuracy {a:.1%}"
                                               for b, f, a in curve))

    if args.adaptive_sessions and data.modality == "image":
        eps = 2.0 if mnist else 1.5
        for noise in args.adaptive_noise:
            out = run_adaptive(target, data, detector, state, args.adaptive_sessions, args.accounts, noise, eps, mnist, guard)
            n = args.adaptive_sessions
            print(f"adaptive HopSkipJump, noise +-{noise} per feature, {args.accounts} accounts: "
                  f"an account locked out in {out['any_locked']}/{n} sessions, all in {out['all_locked']}/{n}; "
                  f"success (L2 <= {eps}) {out['success']}/{n} vs {out['bare_success']}/{n} on the bare model "
                  f"(median L2 {np.median(out['l2']):.2f} vs {np.median(out['bare_l2']):.2f}, inf = none found); "
                  f"median rows sent {median_text(out['queries'])}")


def _report_detection(rows, detector):
    """Per attack: sessions detected (>= 1 flag; the first flag is Chen, Carlini & Wagner's
    "queries to detection"), locked out, and won (an answer the client got was a successful
    evasion; the session ends at its lock-out, so every win came before it); for the wins,
    the row and whether that very query was flagged (an unflagged win is one no refusal can
    stop); requests refused (``refuse_flagged``)."""
    print(f"\ndetection and wins{' (refuse_flagged: a flagged query is not answered)' if detector.refuse_flagged else ''}: "
          f"detected = >= 1 flag (median queries to it), won = the client got a successful evasion before any "
          f"lock-out (row, * = that query was flagged)")
    totals = {"n": 0, "detected": 0, "locked": 0, "won": 0, "won_flagged": 0, "first": []}
    for name, (sessions, _) in rows.items():
        if "Knockoff" in name or "FM05" in name:
            continue
        n = len(sessions)
        first = [sess.detected[0] for sess in sessions]
        by_monitor = sum((sess.detected[1] or "").startswith("extraction") for sess in sessions)
        won = [sess for sess in sessions if sess.succeeded_at is not None]
        flagged_wins = sum(bool(sess.won_at_flagged) for sess in won)
        refused = [sess.channel.refused_requests for sess in sessions]
        totals["n"] += n
        totals["detected"] += sum(f is not None for f in first)
        totals["locked"] += sum(sess.locked_at is not None for sess in sessions)
        totals["won"] += len(won)
        totals["won_flagged"] += flagged_wins
        totals["first"] += first
        print(f"  {name:24s} detected {sum(f is not None for f in first)}/{n} @ {median_text(first):>3s}"
              + (f" ({by_monitor} first by the extraction monitor)" if by_monitor else "") + ", "
              f"locked out {sum(sess.locked_at is not None for sess in sessions)}/{n}, won {len(won)}/{n} "
              f"({flagged_wins} at a flagged query; at rows "
              f"{', '.join(str(sess.succeeded_at) + ('*' if sess.won_at_flagged else '') for sess in won) or '-'}), "
              f"requests refused per session {median_text(refused)}"
              + "".join(f"; undetected: sent {sess.sent} rows, {'won' if sess.succeeded_at else 'no win'}"
                        for sess in sessions if sess.detected[0] is None))
    n = totals["n"]
    print(f"  all evasion sessions: detected {totals['detected']}/{n} (median queries to detection "
          f"{median_text(totals['first'])}), locked out {totals['locked']}/{n}, won before lock-out "
          f"{totals['won']}/{n} ({totals['won_flagged']} at a flagged query, {totals['won'] - totals['won_flagged']} "
          f"at an unflagged one)")


def _report_accounts(target, data, detector, state, mnist, args, guard, judge):
    k, accounts = args.inputs_per_account, args.k_accounts or args.sessions
    started = time.perf_counter()
    rows = run_account_sessions(target, data, detector, state, accounts, k, args.budget, mnist, args.only, guard, judge)
    print(f"\naccounts that attack {k} inputs each ({accounts} accounts per attack, one history per account; "
          f"lock-out at flag {detector.lockout_after}): stopped = locked out before its last input was won, "
          f"late = locked out after every input was won, escaped = every input won and never locked out, "
          f"failed = never locked out but some input not won by the attack itself   [{time.perf_counter() - started:.0f} s]")
    print(f"{'attack':24s} {'stopped':>7s} {'late':>5s} {'escaped':>7s} {'failed':>6s} {'flag 1':>7s} {'lock':>5s} "
          f"{'won/acct':>8s}  per account: inputs won before lock-out/first flag/lock-out")
    for name, (sessions, _) in rows.items():
        outcomes = [account_outcome(sess) for sess in sessions]
        won_before = [sum(w is not None and (sess.locked_at is None or w < sess.locked_at) for w in sess.wins)
                      for sess in sessions]
        detail = "  ".join(f"{n}/{_dash(sess.first_flag_at)}/{_dash(sess.locked_at)}" for n, sess in zip(won_before, sessions))
        flagged_rows = [sess.flagged_rows() for sess in sessions]
        wins = [(w, rows) for sess, rows in zip(sessions, flagged_rows) for w in sess.wins
                if w is not None and (sess.locked_at is None or w < sess.locked_at)]
        detail += (f"  | inputs won {len(wins)} ({sum(w in rows for w, rows in wins)} at a flagged query), "
                   f"requests refused per account {median_text([sess.channel.refused_requests for sess in sessions])}")
        print(f"{name:24s} {outcomes.count('stopped'):>7d} {outcomes.count('late'):>5d} {outcomes.count('escaped'):>7d} "
              f"{outcomes.count('failed'):>6d} {median_text([sess.first_flag_at for sess in sessions]):>7s} "
              f"{median_text([sess.locked_at for sess in sessions]):>5s} {np.median(won_before):>8.1f}  {detail}")


def domain_reference(model: str, data, folder=None) -> str:
    """The extraction monitor's in-domain reference (``--domain``, and bench_guard_stealing):
    the data set's train and test roles (what the operator holds) in an ``.npz`` in ``folder``
    (default: a new temporary one); the pool role, which the held-out honest clients send,
    stays out of it."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="bench-domain-")) if folder is None else Path(folder)
    path = folder / f"{model}-reference.npz"
    np.savez(path, x_train=np.concatenate([data.x_train, data.x_test]), y_train=np.concatenate([data.y_train, data.y_test]))
    return f"npz:{path}"


def _report_stealing(target, data, detector, state, args):
    from redline.defences.extraction_monitor import ExtractionMonitor

    monitor = ExtractionMonitor(**args.monitor)
    monitor.check(target)
    rows = run_stealing_sessions(target, data, detector, monitor, state, args.steal_sessions_monitor, args.budget,
                                 args.only, args.full)
    print(f"\nmodel stealing behind ExtractionMonitor({', '.join(f'{k}={v}' for k, v in monitor.get_params().items())}) "
          f"and the query detector, {args.budget} rows offered per session; fidelity = label agreement on the test "
          f"role of a copy trained on what the account was answered")
    for name, (results, seconds) in rows.items():
        parts = []
        for sess, fidelity in results:
            at, test = sess.monitor_flag()
            by = next((e["defence"] for e in sess.events if e["event"] == "locked_out"), None)
            parts.append(f"flag {_dash(at)} ({test or 'none'}), lock {_dash(sess.locked_at)} ({by or '-'}), answered "
                         f"{sess.answered_rows}, fidelity {fidelity:.1%}")
        flagged = sum(sess.monitor_flag()[0] is not None for sess, _ in results)
        print(f"  {name}: flagged {flagged}/{len(results)} [{seconds:.0f} s]: " + "; ".join(parts))


def _report_varied(target, data, detector, state, args):
    from redline.defences.extraction_monitor import ExtractionMonitor

    monitor = ExtractionMonitor(**args.monitor)
    monitor.check(target)
    print(f"\nvaried honest clients (sizes 10-{args.varied_largest} rows, 0-30% repeats, 10-60% corrupted, "
          f"batches 1-32), through the query detector and the extraction monitor; 95% upper bounds "
          f"(Clopper-Pearson) per client")
    for role, x, seed in (("test", data.x_test, 11), ("pool", data.x_pool, 12)):
        for retakes in (0.0, 0.1):
            started = time.perf_counter()
            streams = varied_streams(x, args.varied_clients, seed + (100 if retakes else 0),
                                     largest=args.varied_largest, retakes=retakes)
            out = run_population(target, detector, monitor, state, streams, f"varied-{role}-{retakes}")
            n = len(out)
            qd = np.array([r["qd_flags"] for r in out])
            mon = sum(r["monitor_flags"] > 0 for r in out)
            locked = sum(r["locked"] for r in out)
            least = np.array([r["least_w"] for r in out], float)
            tested = least[~np.isnan(least)]
            tests = sorted({r["monitor_test"] for r in out if r["monitor_test"]})
            print(f"  {role} role{' (calibration)' if role == 'test' else ' (held out)'}, "
                  f"{'0-10% re-takes' if retakes else 'no re-takes'}: {n} clients, {sum(r['rows'] for r in out)} rows; "
                  f"query detector: >= 1 flag {(qd >= 1).sum()}/{n} (bound {_rule_of_three(int((qd >= 1).sum()), n):.2%}), "
                  f">= 2 flags {(qd >= 2).sum()}/{n} (bound {_rule_of_three(int((qd >= 2).sum()), n):.2%}), "
                  f"locked out {locked}/{n} (bound {_rule_of_three(locked, n):.2%}); "
                  f"extraction monitor flagged {mon}/{n} (bound {_rule_of_three(mon, n):.2%}; {', '.join(tests) or '-'}); "
                  f"least W of {len(tested)} clients with >= {monitor.min_queries} distances: "
                  f"{tested.min() if len(tested) else float('nan'):.3f}   [{time.perf_counter() - started:.0f} s]")
            if detector.refuse_flagged:
                print(f"    refused requests (refuse_flagged): {_refused_text([r['refused'] for r in out])}")


def _refusals(channel) -> tuple[int, int, int, int]:
    """(requests refused, requests sent, rows refused, rows sent) of one client's channel."""
    return channel.refused_requests, channel.requests, channel.refused_rows, channel.rows


def _refused_text(refused) -> str:
    """Clients with a refused request and the share of all requests (rows) refused, from
    :func:`_refusals` per client."""
    n = len(refused)
    hit = sum(r[0] > 0 for r in refused)
    requests, sent, rows, rows_sent = (sum(r[i] for r in refused) for i in range(4))
    return (f"clients with >= 1 refused {hit}/{n} (bound {_rule_of_three(hit, n):.2%}), >= 2 "
            f"{sum(r[0] > 1 for r in refused)}/{n}; requests refused {requests}/{sent} = {requests / max(sent, 1):.2%}, "
            f"rows {rows}/{rows_sent} = {rows / max(rows_sent, 1):.2%}")


def _dash(value):
    return "-" if value is None else str(value)


def _rule_of_three(k: int, n: int) -> float:
    """A 95% upper bound on a rate seen k times in n (Clopper-Pearson; 3/n when k = 0)."""
    if n == 0:
        return float("nan")
    from scipy.stats import beta
    return float(beta.ppf(0.95, k + 1, n - k)) if k < n else 1.0


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", action="store_true", help="also the zoo MNIST CNN")
    p.add_argument("--models", help="comma-separated zoo models instead (e.g. mnist_cnn, fair_logreg, "
                                    "breast_cancer_mlp)")
    p.add_argument("--tabular", action="store_true", help="also breast_cancer_mlp and the zoo fair_logreg")
    p.add_argument("--full", action="store_true", help="more sessions and clients, and MNIST")
    p.add_argument("--sessions", type=int, default=None, help="attack sessions per attack")
    p.add_argument("--budget", type=int, default=1000, help="rows per attack session (redline checks, KnockoffNets)")
    p.add_argument("--clients", type=int, default=None, help="honest clients")
    p.add_argument("--queries", type=int, default=100, help="queries per honest client")
    p.add_argument("--adaptive-sessions", type=int, default=None)
    p.add_argument("--adaptive-noise", type=float, nargs="+", default=[0.0625, 0.125])
    p.add_argument("--accounts", type=int, default=4)
    p.add_argument("--steal-budgets", type=int, nargs="*", default=None,
                   help="rows per account for the model-stealing curve (default 100 300 800; none: skip)")
    p.add_argument("--steal-sessions", type=int, default=1)
    p.add_argument("--set", dest="detector", action="append", default=[], metavar="PARAM=VALUE",
                   help="a QueryDetector parameter other than its default (repeatable), e.g. --set window=10")
    p.add_argument("--via-guard", action="store_true",
                   help="send every session over loopback through the real guard (redline guard) instead of in process")
    p.add_argument("--accounts-pool", type=int, default=400, help="client keys the guard is started with (--via-guard)")
    p.add_argument("--only", nargs="*", help="run only attacks whose name contains one of these words")
    p.add_argument("--inputs-per-account", type=int, default=5,
                   help="inputs each attacking account attacks in the accounts view (1: skip that view)")
    p.add_argument("--k-accounts", type=int, default=None, help="accounts per attack in that view (default --sessions)")
    p.add_argument("--steal-sessions-monitor", type=int, default=None,
                   help="stealing sessions behind the extraction monitor (default: --sessions; 0: skip)")
    p.add_argument("--monitor", action="append", default=[], metavar="PARAM=VALUE",
                   help="an ExtractionMonitor parameter (repeatable); the run uses max_rows=500 unless given")
    p.add_argument("--varied-clients", type=int, default=None,
                   help="varied honest clients per role and population (default 100, --full 400; 0: skip)")
    p.add_argument("--domain", action="store_true",
                   help="give the extraction monitor the in-domain reference (train and test roles) and put it in "
                        "front of the evasion sessions too, so a flag of either defence counts as detection (in process)")
    p.add_argument("--varied-largest", type=int, default=500, help="the largest varied honest client, in rows")
    args = p.parse_args()
    args.detector = {k: yaml_value(v) for k, v in (item.split("=", 1) for item in args.detector)}
    args.monitor = {"max_rows": 500, **{k: yaml_value(v) for k, v in (item.split("=", 1) for item in args.monitor)}}
    args.varied_clients = args.varied_clients if args.varied_clients is not None else (400 if args.full else 100)
    args.sessions = args.sessions or (10 if args.full else 3)
    if args.steal_sessions_monitor is None:
        args.steal_sessions_monitor = args.sessions
    args.clients = args.clients or (400 if args.full else 40)
    args.steal_budgets = [100, 300, 800] if args.steal_budgets is None else args.steal_budgets
    args.adaptive_sessions = args.adaptive_sessions if args.adaptive_sessions is not None else (10 if args.full else 3)
    started = time.perf_counter()
    models = (["digits_mlp_overfit"] + (["mnist_cnn"] if args.mnist or args.full else [])
              + (["breast_cancer_mlp", "fair_logreg"] if args.tabular or args.full else []))
    for model in args.models.split(",") if args.models else models:
        bench(model, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
