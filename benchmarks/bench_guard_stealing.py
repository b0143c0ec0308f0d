"""Model stealing against the extraction monitor's out-of-domain test (redline.defences.extraction_monitor).

One run, in process: a zoo model (``digits_mlp_overfit``; ``--mnist`` adds ``mnist_cnn``) behind
``DefendedTarget(model, [ExtractionMonitor(reference=..., max_rows=500)])``, PRADA at its
default, one account per session (a ``for_client`` twin on one shared MemoryState). The
reference is the model's in-domain sample that an operator holds: the data set's train and
test roles, written to an ``.npz``; the ``pool`` role is kept out of it and is what both the
honest clients and the in-domain thief send (inputs the monitor never calibrated on).

Thieves (ART's KnockoffNets, ``random`` and ``adaptive`` sampling, ``--budget`` rows offered;
the thief network and its training are the detection benchmark's; the adaptive bandit is
rewarded by the answer's certainty, ``reward="cert"``: ART's default ``all`` divides by a
running spread that is 0 while a confident CNN answers one-hot vectors, and crashes):

* ``photos``: the setting of the KnockoffNets paper (Orekondy et al. 2019): the thief has no
  data of the model's domain and queries a natural-image transfer set. Here: grey square
  crops (side 16-200 px, or the model's side if larger) of scikit-learn's two sample photos
  (``load_sample_images``: a temple and a flower), box-resized to the model's input. The
  adaptive thief's "classes" (its bandit's actions) are 10 k-means clusters of the patches.
  ``photos dark``: the same patches adapted to look like the model's inputs (inverted when
  bright, stretched to full contrast).
* ``related``: digits of the other built-in set (MNIST downsampled to 8x8 for the digits
  model; the 8x8 digits box-upsampled to 28x28 for the MNIST model). Same task, another
  scanner and pen: closer to the domain than photos; whether it is "out of domain" is
  measured, not assumed.
* ``uniform``: uniform noise in the input box (a thief with no data at all).
* ``pool``: the model's own kind of data (the pool role): what honest clients send; only the
  row budget (``max_rows: 500``, a policy number) bounds it.
* ``mixed 30%`` / ``mixed 10%``: photo patches diluted among pool rows (random sampling only):
  where the test's ``domain_share`` (5%) leaves a thief that owns some in-domain data.

Per thief: the share of its transfer set's rows the monitor calls outside the domain, rows
sent to the monitor's first flag and which test raised it, rows to the
lock-out, rows answered, the fidelity (label agreement on the test role) of a copy trained
on exactly what the account was answered, and, for reference, the fidelity of the same copy
trained on the bare model's answers to the whole transfer set. A session whose first batch
is refused gets no answer and no copy (``-``).

Honest clients (``--clients`` per population): the detection benchmark's varied streams of
held-out pool inputs (sizes log-uniform 10-500 rows, 0-30% exact repeats, 10-60% under a
common corruption, batches of 1-32), once without and once with 0-10% re-takes. Reported:
clients flagged by the monitor (any test) with a 95% Clopper-Pearson upper bound, and the
per-row outside share of held-out rows, clean and corrupted, next to the calibrated rate.
Also printed: how the model's own answer would do as the score (photo patches whose top
probability is below the 1st percentile of clean held-out rows').

Measured 2026-12-07 with ``--mnist --sessions 3 --clients 200`` (664 s, load ~3 on 2 shared
cores), digits MLP / MNIST CNN: every out-of-domain thief, random and adaptive (photos, dark
photos, related digits, noise: 21 sessions per model) was flagged by the domain test and
locked out at row 20; random thieves got no answer, adaptive ones 19. Rows outside: photos
100%, dark photos 100% / 99.9%, related digits 95% / 93%, noise 100%, pool 0.4% / 1.0%. The
bare model's answers to all 1000 photos would have given copies of 42% / 31% fidelity (dark
photos 64% / 34%). Pool thieves were never flagged by it: the budget locked them at 501 rows
(random; copies 96% / 87-88%) or 684-758 sent with repeats (adaptive; 97% / 86-89%). Photos
diluted to 30% among pool rows: flagged at 27-112 / 64-69 rows (copies of 63-81% from the
64 rows some sessions got); diluted to 10%: only the budget, at 501. Held-out rows outside:
0.45% clean and 0.78% corrupted (digits), 0.93% / 0.73% (MNIST). Honest clients flagged:
0/400 per model (95% bound 0.75%), with and without re-takes. The model's own answer as the
score (top probability under its honest 1st percentile) calls 4% / 26% of photos outside.

    nice -n 5 python benchmarks/bench_guard_stealing.py [--mnist] [--sessions 3] [--clients 200] [--budget 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_guard_detection import (
    Session,
    _dash,
    _rule_of_three,
    _seed_globals,
    art_blackbox,
    copy_fidelity,
    domain_reference,
    load_model,
    median_text,
    thief_classifier,
    varied_streams,
)

warnings.filterwarnings("ignore")


# -- transfer sets ------------------------------------------------------------------------------
def photo_patches(n, side, rng):
    """``n`` grey square crops of scikit-learn's sample photos, box-resized to side x side, in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [image.astype(np.float64).mean(axis=2) for image in load_sample_images().images]
    out = np.empty((n, 1, side, side), np.float32)
    for i in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        s = int(rng.integers(max(side, 16), 201))
        r, c = int(rng.integers(photo.shape[0] - s + 1)), int(rng.integers(photo.shape[1] - s + 1))
        crop = Image.fromarray(photo[r:r + s, c:c + s].astype(np.uint8))
        out[i, 0] = np.asarray(crop.resize((side, side), Image.BOX), np.float32) / 255.0
    return out


def dark_background(patches):
    """Patches made to look more like digits: inverted where bright, each stretched to [0, 1]
    (a thief that adapts its transfer set to the model's dark background and full contrast)."""
    x = np.where(patches.mean(axis=(1, 2, 3), keepdims=True) > 0.5, 1.0 - patches, patches)
    low, high = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    return ((x - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)


def related_digits(side, n, rng):
    """Digits of the other built-in set, box-resized to side x side: MNIST for an 8x8 model,
    scikit-learn's 8x8 digits for a 28x28 one."""
    from PIL import Image

    from redline.data import load_data

    other = load_data("builtin:mnist" if side == 8 else "builtin:digits")
    x = np.concatenate([other.x_train, other.x_test, other.x_pool])
    x = x[rng.permutation(len(x))[:n]]
    out = np.empty((len(x), 1, side, side), np.float32)
    for i, image in enumerate(x):
        picture = Image.fromarray((image[0] * 255).astype(np.uint8))
        out[i, 0] = np.asarray(picture.resize((side, side), Image.BOX), np.float32) / 255.0
    return out


def pseudo_classes(x, k, seed):
    """The adaptive thief's actions for an unlabelled transfer set: ``k`` k-means clusters."""
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=3, random_state=seed).fit_predict(x.reshape(len(x), -1))


def transfer_set(kind, data, budget, side, seed):
    rng = np.random.default_rng(seed)
    if kind == "photos":
        x = photo_patches(budget, side, rng)
        return x, pseudo_classes(x, 10, seed)
    if kind == "photos dark":
        x = dark_background(photo_patches(budget, side, rng))
        return x, pseudo_classes(x, 10, seed)
    if kind == "related":
        x = related_digits(side, budget, rng)
        return x, pseudo_classes(x, 10, seed)
    if kind == "uniform":
        x = rng.random((budget, 1, side, side)).astype(np.float32)
        return x, pseudo_classes(x, 10, seed)
    pick = rng.permutation(len(data.x_pool))[:budget]
    pool, labels = data.x_pool[pick].astype(np.float32), np.asarray(data.y_pool)[pick].astype(int)
    if kind.startswith("mixed"):  # "mixed 30%": that share of photo patches among pool rows, shuffled
        share = float(kind.split()[1].rstrip("%")) / 100
        photos = int(round(share * len(pool)))
        x = np.concatenate([photo_patches(photos, side, rng), pool[:len(pool) - photos]])
        order = rng.permutation(len(x))
        return x[order], np.concatenate([np.full(photos, -1), labels[:len(pool) - photos]])[order]
    return pool, labels


def knockoff(x, y, strategy, seed):
    """``attack(defended)``: ART's KnockoffNets with ``strategy`` on the transfer set (x, y)."""
    from art.attacks.extraction import KnockoffNets

    def attack(t):
        _seed_globals(seed)
        thief = thief_classifier(t.input_spec.shape, t.n_classes, seed)
        return KnockoffNets(art_blackbox(t), batch_size_fit=64, batch_size_query=64, nb_epochs=5, nb_stolen=len(x),
                            sampling_strategy=strategy, verbose=False, use_probability=True,
                            reward="cert").extract(x, y if strategy == "adaptive" else None, thieved_classifier=thief)
    return attack


# -- runs ------------------------------------------------------------------------------------------
class NoDetector:
    """The query detector's slot in the detection benchmark's Session, left empty: this run
    measures the extraction monitor alone."""

    def for_client(self, client, state):
        from redline.defences import Defence

        return Defence()


def run_thieves(target, data, monitor, state, args, side):
    print(f"{'thief':28s} {'outside':>7s} {'flagged':>7s} {'flag at':>7s} {'lock at':>7s} {'answered':>8s} "
          f"{'fidelity':>8s} {'bare':>6s}  per session: flag/lock/answered/fidelity (test)")
    for kind in ("photos", "photos dark", "related", "uniform", "pool", "mixed 30%", "mixed 10%"):
        for strategy in ("random", "adaptive"):
            if strategy == "adaptive" and (kind == "uniform" or kind.startswith("mixed")):
                continue  # noise has no classes to choose among; the mixtures show dilution only
            started = time.perf_counter()
            results, bare, outside = [], [], []
            for s in range(args.sessions):
                x, y = transfer_set(kind, data, args.budget, side, seed=100 + s)
                outside.append(float(monitor._domain_.outside(x).mean()))  # per row, before any test
                session = Session(target, NoDetector(), state, f"{kind}-{strategy}#{s}", monitor=monitor)
                session.run(knockoff(x, y, strategy, seed=s))
                fidelity = copy_fidelity(target, data, session.recorder.answered, s)
                results.append((session, fidelity))
                if s == 0:  # what the same transfer set buys from the bare model
                    with target.ledger.evaluating():
                        answers = target.predict(x)
                    bare.append(copy_fidelity(target, data, [(x, answers)], s))
            flags = [sess.monitor_flag() for sess, _ in results]
            fid = [f for _, f in results if not np.isnan(f)]
            detail = "  ".join(f"{_dash(at)}/{_dash(sess.locked_at)}/{sess.answered_rows}/"
                               f"{'-' if np.isnan(f) else f'{f:.0%}'} ({test or 'none'})"
                               for (sess, f), (at, test) in zip(results, flags))
            print(f"{kind + ' ' + strategy:28s} {np.mean(outside):>7.1%} {sum(a is not None for a, _ in flags)}/{len(results):<5d} "
                  f"{median_text([a for a, _ in flags]):>7s} {median_text([sess.locked_at for sess, _ in results]):>7s} "
                  f"{median_text([sess.answered_rows for sess, _ in results]):>8s} "
                  f"{(f'{np.median(fid):.0%}' if fid else '-'):>8s} {bare[0]:>6.0%}  {detail}   "
                  f"[{time.perf_counter() - started:.0f} s]")


def run_honest(target, data, monitor, state, args):
    from redline.defences.domain import corrupt

    scorer = monitor._domain_
    pool = data.x_pool.astype(np.float64)
    rng = np.random.default_rng(7)
    varied = corrupt(pool, rng, 0.0, 1.0, image=True)
    print(f"per row, held-out pool: outside {scorer.outside(pool).mean():.2%} clean, {scorer.outside(varied).mean():.2%} "
          f"under a corruption (calibrated: {1 - monitor.domain_quantile:.0%} of held-in rows; null share "
          f"{monitor.domain_share:.0%})")
    for retakes in (0.0, 0.1):
        started = time.perf_counter()
        streams = varied_streams(data.x_pool, args.clients, 40 + int(retakes * 100), largest=500, retakes=retakes)
        flagged, tests, rows, most = 0, set(), 0, 0.0
        for c, batches in enumerate(streams):
            def replay(t, batches=batches):
                for batch in batches:
                    t.predict(batch)

            session = Session(target, NoDetector(), state, f"honest-{retakes}-{c}", monitor=monitor)
            session.run(replay)
            at, test = session.monitor_flag()
            flagged += at is not None
            tests |= {test} if test else set()
            rows += sum(map(len, batches))
            # the account's own outside share over its distinct rows
            distinct = np.unique(np.concatenate(batches).reshape(-1, int(np.prod(data.x_pool.shape[1:]))), axis=0)
            most = max(most, float(scorer.outside(distinct).mean()))
        print(f"honest clients, {'0-10% re-takes' if retakes else 'no re-takes'}: {len(streams)} clients, {rows} rows; "
              f"flagged by the monitor {flagged}/{len(streams)} (95% upper bound "
              f"{_rule_of_three(flagged, len(streams)):.2%}; {', '.join(sorted(tests)) or '-'}); the largest outside "
              f"share of one client {most:.1%}   [{time.perf_counter() - started:.0f} s]")


def own_answer_baseline(target, data, side):
    """The model's top probability as the out-of-domain score, at a threshold that calls 1% of
    clean held-out rows outside: the share of photo patches it calls outside."""
    photos = photo_patches(500, side, np.random.default_rng(3))
    with target.ledger.evaluating():
        honest = np.asarray(target.predict(data.x_pool.astype(np.float32))).max(axis=1)
        odd = np.asarray(target.predict(photos)).max(axis=1)
    bar = np.quantile(honest, 0.01)
    return float((odd < bar).mean()), float(bar)


def bench(model, args, folder):
    from redline.defences import MemoryState
    from redline.defences.extraction_monitor import ExtractionMonitor

    target, data = load_model(model)
    side = int(target.input_spec.shape[-1])
    started = time.perf_counter()
    monitor = ExtractionMonitor(reference=domain_reference(model, data, folder), max_rows=500, **args.monitor)
    monitor.check(target)
    scorer = monitor._domain_
    print(f"\n== {model}: ExtractionMonitor(reference=train+test roles ({len(scorer.reference_)} rows), max_rows=500, "
          f"{', '.join(f'{k}={v}' for k, v in args.monitor.items()) or 'defaults otherwise'}); threshold "
          f"{scorer.threshold_:.3f} [calibrated in {time.perf_counter() - started:.1f} s]")
    share, bar = own_answer_baseline(target, data, side)
    print(f"the model's own answer as the score instead (top probability < {bar:.3f}, the 1st percentile of clean "
          f"held-out rows): {share:.0%} of photo patches outside")
    state = MemoryState()
    run_thieves(target, data, monitor, state, args, side)
    run_honest(target, data, monitor, state, args)


def main():
    from bench_guard_detection import yaml_value

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", action="store_true", help="also the zoo MNIST CNN")
    p.add_argument("--models", help="comma-separated zoo models instead")
    p.add_argument("--sessions", type=int, default=3, help="sessions per thief")
    p.add_argument("--budget", type=int, default=1000, help="rows in a thief's transfer set")
    p.add_argument("--clients", type=int, default=200, help="honest clients per population")
    p.add_argument("--monitor", action="append", default=[], metavar="PARAM=VALUE",
                   help="another ExtractionMonitor parameter (repeatable)")
    args = p.parse_args()
    args.monitor = {k: yaml_value(v) for k, v in (item.split("=", 1) for item in args.monitor)}
    started = time.perf_counter()
    models = args.models.split(",") if args.models else ["digits_mlp_overfit"] + (["mnist_cnn"] if args.mnist else [])
    with tempfile.TemporaryDirectory(prefix="bench-stealing-") as folder:
        for model in models:
            bench(model, args, Path(folder))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
