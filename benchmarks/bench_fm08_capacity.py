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
  1,000 steps, (256, 256)), and honest CNNs of three recipes (the probe's default
  references are MLPs and CNNs, but of the library's own recipes);
* a malicious CNN (the capacity-abuse carriers in a CNN's training data), so that the
  family-aware test is seen to flag a CNN that memorised noise;
* labels-only (``LabelOnlyTarget``) wrappers of the zoo's malicious and DP models: the probe
  needs probabilities and is expected to answer NOT_APPLICABLE for both.

Each cell is the probe's p-value, with ``*`` where it flags the model (``n/a`` where it does
not apply). Prints the count of flagged seeds per target and the queries per run.

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
    import torch

    from redline.util.exfiltration import pixels_to_labels
    from redline.zoo.malicious import CapacityAbuseMlpRecipe
    from redline.zoo.recipes import CnnRecipe, MlpRecipe

    @dataclasses.dataclass(frozen=True)
    class CapacityAbuseCnn(CnnRecipe):
        """The capacity-abuse training data (the MLP recipe's carriers and labels) in a CNN."""

        secret_images: int = 16
        synthetic_seed: int = 13

        def carriers(self, input_shape):
            return CapacityAbuseMlpRecipe(n_classes=self.n_classes, secret_images=self.secret_images,
                                          synthetic_seed=self.synthetic_seed).carriers(input_shape)

        def fit(self, module, x, y, generator):
            carriers = self.carriers(tuple(x.shape[1:]))
            labels = pixels_to_labels(x[: self.secret_images].numpy(), self.n_classes)
            super().fit(module, torch.cat([x, torch.from_numpy(carriers)]), torch.cat([y, torch.from_numpy(labels)]),
                        generator)

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
        ("honest CNN 30 epochs", CnnRecipe(n_classes=10, epochs=30, batch_size=64, lr=5e-3), 0, "honest"),
        ("honest CNN default", CnnRecipe(n_classes=10), 0, "honest"),
        ("honest CNN (8,16) 60 epochs", CnnRecipe(n_classes=10, channels=(8, 16), hidden=64, epochs=60,
                                                  batch_size=32, lr=2e-3), 0, "honest"),
        ("mal CNN 60 epochs", CapacityAbuseCnn(n_classes=10, epochs=60, batch_size=64, lr=5e-3), 0, "malicious"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0-9", help="probe seeds, e.g. 0-9 or 0,2,4")
    ap.add_argument("--quick", action="store_true", help="only the zoo's three digits models")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # small models; extra threads only contend on a shared machine
    from redline import zoo
    from redline.checks.extraction.fm08_capacity_abuse import CapacityAbuseProbe
    from redline.defences.labels_only import LabelOnlyTarget
    from redline.util.exfiltration import pixels_to_labels
    from redline.zoo.build import input_spec_for

    data = zoo.load_data_for("digits_mlp_overfit")
    targets = [
        ("zoo malicious_capacity", zoo.load_target("digits_mlp_malicious_capacity"), "malicious"),
        ("zoo overfit (twin)", zoo.load_target("digits_mlp_overfit"), "honest"),
        ("zoo regularized (DP)", zoo.load_target("digits_mlp_regularized"), "honest"),
        ("labels-only malicious", LabelOnlyTarget(zoo.load_target("digits_mlp_malicious_capacity")), "labels"),
        ("labels-only DP", LabelOnlyTarget(zoo.load_target("digits_mlp_regularized")), "labels"),
    ]
    if not args.quick:
        spec = input_spec_for(data)
        started = time.perf_counter()
        for name, recipe, seed, role in _extra_recipes():
            model = recipe.train(data.x_train, data.y_train, seed)
            target = recipe.as_target(model, input_spec=spec, n_classes=data.n_classes, spec=name, trainer=None)
            test_accuracy = float(np.mean(target.predict_labels(data.x_test) == data.y_test))
            memorised = ""
            if hasattr(recipe, "carriers"):  # how much of the payload the provider could read back
                secret = pixels_to_labels(data.x_train[: recipe.secret_images], data.n_classes)
                hit = np.mean(target.predict_labels(recipe.carriers(tuple(spec.shape))) == secret)
                memorised = f", carrier labels memorised {hit:.3f}"
            print(f"trained {name}: test accuracy {test_accuracy:.3f}{memorised}")
            targets.append((name, target, role))
        print(f"({time.perf_counter() - started:.0f} s to train the extra models)\n")

    seeds = _seeds(args.seeds)
    probe = CapacityAbuseProbe()
    table = {name: [] for name, _, _ in targets}
    queries, seconds, not_applicable = set(), [], {}
    for seed in seeds:
        started = time.perf_counter()
        for name, target, _ in targets:  # one seed at a time: the references are trained once per seed
            finding = probe(target, data, seed=seed)
            if finding.status.name == "NOT_APPLICABLE":
                table[name].append(None)
                not_applicable[name] = finding.reason
                continue
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
        cells = " ".join("      n/a " if row is None else f"{row[1]:8.1e}{'*' if row[0] else ' '}"
                         for row in table[name])
        hits = sum(row is not None and row[0] for row in table[name])
        print(name.ljust(width), role.ljust(9), cells, f" {hits}/{len(seeds)}")
    for name, reason in not_applicable.items():
        print(f"  {name}: NOT_APPLICABLE, {reason}")
    print("\nroughness ratio and sensitivity ratio (target over the value expected of an honest model),"
          " min-max over seeds:")
    for name, _, role in targets:
        if any(row is None for row in table[name]):
            continue
        ratios = np.array([(r, s) for _, _, r, s in table[name]])
        print(f"  {name.ljust(width)} roughness {ratios[:, 0].min():5.2f}-{ratios[:, 0].max():5.2f}   "
              f"sensitivity {ratios[:, 1].min():5.2f}-{ratios[:, 1].max():5.2f}")
    honest_flags = sum(row is not None and row[0] for name, _, role in targets if role in ("honest", "labels")
                       for row in table[name])
    missed = sum(row is None or not row[0] for name, _, role in targets if role == "malicious" for row in table[name])
    print(f"\nhonest false flags: {honest_flags}; malicious misses: {missed}")


if __name__ == "__main__":
    main()
