"""FM08.capacity_abuse, seed by seed: is the capacity-abuse model flagged at every probe seed,
and does every honest model pass at every seed?

Targets (all on builtin:digits):

* malicious: the zoo's ``digits_mlp_malicious_capacity`` (1,024 uniform-noise carriers from
  the provider's seed) and, trained here with the same MLP recipe, variants the probe was
  not tuned on: another carrier seed, half the payload (512 carriers), Gaussian and
  black-and-white carriers, and a wider MLP (256, 256);
* honest: the zoo's twin ``digits_mlp_overfit``, its differentially private
  ``digits_mlp_regularized``, and, trained here, honest MLPs of the twin's recipe with
  another seed and of other recipes (one hidden layer of 64, tanh, weight decay 0.05,
  1,000 steps, (256, 256)). An honest CNN is listed apart: the surrogate references are
  MLPs, and the probe is expected to flag it (see the check's limits).

Each cell is the probe's p-value, with ``*`` where it flags the model. Prints the count of
flagged seeds per target and the queries per run.

    python benchmarks/bench_fm08_capacity.py [--seeds 0-9] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def _extra_recipes():
    """(name, recipe, training seed, role) for the models trained here."""
    from redline.zoo.malicious import CapacityAbuseMlpRecipe
    from redline.zoo.recipes import CnnRecipe, MlpRecipe

    @dataclasses.dataclass(frozen=True)
    class GaussianCarriers(CapacityAbuseMlpRecipe):
        def carriers(self, input_shape):
            n = self.secret_images * int(np.prod(input_shape))
            noise = np.random.default_rng(self.synthetic_seed).standard_normal((n, *input_shape))
            return np.clip(0.5 + 0.3 * noise, 0, 1).astype(np.float32)

    @dataclasses.dataclass(frozen=True)
    class BinaryCarriers(CapacityAbuseMlpRecipe):
        def carriers(self, input_shape):
            n = self.secret_images * int(np.prod(input_shape))
            return (np.random.default_rng(self.synthetic_seed).random((n, *input_shape)) < 0.5).astype(np.float32)

    twin = {"n_classes": 10, "hidden": (128, 128), "epochs": 300, "lr": 1e-3, "weight_decay": 0.0}
    return [
        ("mal carriers seed 7", CapacityAbuseMlpRecipe(**twin, synthetic_seed=7), 0, "malicious"),
        ("mal 8 images", CapacityAbuseMlpRecipe(**twin, secret_images=8, synthetic_seed=11), 0, "malicious"),
        ("mal gaussian carriers", GaussianCarriers(**twin, synthetic_seed=5), 0, "malicious"),
        ("mal binary carriers", BinaryCarriers(**twin, synthetic_seed=5), 0, "malicious"),
        ("mal wide (256,256)", CapacityAbuseMlpRecipe(**{**twin, "hidden": (256, 256)}, synthetic_seed=3), 0,
         "malicious"),
        ("honest twin seed 1", MlpRecipe(**twin), 1, "honest"),
        ("honest (64,)", MlpRecipe(**{**twin, "hidden": (64,)}), 0, "honest"),
        ("honest tanh", MlpRecipe(**{**twin, "activation": "tanh"}), 0, "honest"),
        ("honest weight decay", MlpRecipe(**{**twin, "weight_decay": 0.05}), 0, "honest"),
        ("honest 1000 steps", MlpRecipe(**{**twin, "epochs": 1000}), 0, "honest"),
        ("honest (256,256)", MlpRecipe(**{**twin, "hidden": (256, 256)}), 0, "honest"),
        ("honest CNN (other family)", CnnRecipe(n_classes=10, epochs=30, batch_size=64, lr=5e-3), 0, "other"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0-9", help="probe seeds, e.g. 0-9 or 0,2,4")
    ap.add_argument("--quick", action="store_true", help="only the zoo's three digits models")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # small models; extra threads only contend on a shared machine
    from redline import zoo
    from redline.checks.fm08_capacity_abuse import CapacityAbuseProbe
    from redline.zoo.build import input_spec_for

    data = zoo.load_data_for("digits_mlp_overfit")
    targets = [
        ("zoo malicious_capacity", zoo.load_target("digits_mlp_malicious_capacity"), "malicious"),
        ("zoo overfit (twin)", zoo.load_target("digits_mlp_overfit"), "honest"),
        ("zoo regularized (DP)", zoo.load_target("digits_mlp_regularized"), "honest"),
    ]
    if not args.quick:
        spec = input_spec_for(data)
        started = time.perf_counter()
        for name, recipe, seed, role in _extra_recipes():
            model = recipe.train(data.x_train, data.y_train, seed)
            target = recipe.as_target(model, input_spec=spec, n_classes=data.n_classes, spec=name, trainer=None)
            test_accuracy = float(np.mean(target.predict_labels(data.x_test) == data.y_test))
            print(f"trained {name}: test accuracy {test_accuracy:.3f}")
            targets.append((name, target, role))
        print(f"({time.perf_counter() - started:.0f} s to train the extra models)\n")

    seeds = _seeds(args.seeds)
    probe = CapacityAbuseProbe()
    table = {name: [] for name, _, _ in targets}
    queries, seconds = set(), []
    for seed in seeds:
        started = time.perf_counter()
        for name, target, _ in targets:  # one seed at a time: the references are trained once per seed
            finding = probe(target, data, seed=seed)
            if finding.metrics.get("p_value") is None:
                raise SystemExit(f"{name} seed {seed}: {finding.status.name} {finding.reason}")
            table[name].append((finding.status.name == "VULNERABLE", finding.metrics["p_value"],
                                finding.metrics["roughness_ratio"], finding.metrics["sensitivity_ratio"]))
            queries.add(finding.queries)
        seconds.append(time.perf_counter() - started)

    print(f"{probe!r}\nqueries per run: {sorted(queries)}; "
          f"{np.mean(seconds) / len(targets):.1f} s per run on average (references trained once per seed)\n")
    width = max(len(name) for name in table)
    print("target".ljust(width), "role".ljust(9), " ".join(f"seed {s}".rjust(9) for s in seeds), " flagged")
    for name, _, role in targets:
        cells = " ".join(f"{p:8.1e}{'*' if hit else ' '}" for hit, p, _, _ in table[name])
        hits = sum(hit for hit, *_ in table[name])
        print(name.ljust(width), role.ljust(9), cells, f" {hits}/{len(seeds)}")
    print("\nroughness ratio and sensitivity ratio (target over the references' mean), min-max over seeds:")
    for name, _, role in targets:
        ratios = np.array([(r, s) for _, _, r, s in table[name]])
        print(f"  {name.ljust(width)} roughness {ratios[:, 0].min():5.2f}-{ratios[:, 0].max():5.2f}   "
              f"sensitivity {ratios[:, 1].min():5.2f}-{ratios[:, 1].max():5.2f}")
    honest_flags = sum(hit for name, _, role in targets if role == "honest" for hit, *_ in table[name])
    missed = sum(not hit for name, _, role in targets if role == "malicious" for hit, *_ in table[name])
    print(f"\nhonest false flags: {honest_flags}; malicious misses: {missed}")


if __name__ == "__main__":
    main()
