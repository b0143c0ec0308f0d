"""Build zoo models on first use, load them from the cache afterwards, and serve them as Targets."""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import Dataset, load_data
from ..defences.labels_only import LabelOnlyTarget
from ..errors import TargetError, UsageError
from ..targets.base import FeatureConstraints, InputSpec, Target
from ..version import __version__
from . import cache
from .agents import AGENTS_BY_NAME
from .entries import ENTRIES, ENTRIES_BY_NAME, ZooEntry
from .recipes import InvalidModelFile, TrainingRefused

log = logging.getLogger("redline.zoo")


def names() -> list[str]:
    """Names of the zoo's targets, in catalogue order."""
    return [entry.name for entry in ENTRIES]


def agent_names() -> list[str]:
    """Names of the zoo's agents (policies for ``env:`` environments), in catalogue order."""
    return list(AGENTS_BY_NAME)


def entry(name: str) -> ZooEntry:
    """The catalogue entry ``name``; UsageError listing the known names otherwise."""
    try:
        return ENTRIES_BY_NAME[name]
    except (KeyError, TypeError):
        pass
    if name in AGENTS_BY_NAME:
        return AGENTS_BY_NAME[name]  # type: ignore[return-value]  # an agent (redline.zoo.agents)
    known = ", ".join(names() + list(AGENTS_BY_NAME))
    raise UsageError(f"unknown zoo target {name!r}; known: {known}") from None


def describe(name: str) -> dict[str, Any]:
    """What the entry is, its weakness and twin, and (once built) its measured accuracy."""
    item = entry(name)
    facts = item.describe()
    if name in AGENTS_BY_NAME:
        return facts
    facts["build"] = _latest_record(item.serves or item.name, item)
    return facts


def load_data_for(name: str) -> Dataset:
    """The data set the zoo target ``name`` was trained on, with its train / test / pool roles."""
    item = entry(name)
    dataset = load_data(item.data)
    if name in AGENTS_BY_NAME:  # an agent's data is its environment
        return dataset
    return item.data_variant(dataset) if item.data_variant is not None else dataset


def open_zoo(name: str, request: object) -> Target:
    """The adapter table's loader for ``zoo:NAME`` (the table names this function, so the
    targets layer never imports the zoo that sits above it)."""
    return load_target(name)


def load_target(name: str) -> Target:
    """The zoo target ``name`` (spec ``zoo:NAME``), trained on first use and cached afterwards."""
    item = entry(name)
    if name in AGENTS_BY_NAME:
        from .agents import load_agent

        return load_agent(name)
    if item.serves is not None:
        return _wrapped(item, load_target(item.serves))
    dataset = load_data_for(name)
    input_spec = input_spec_for(dataset)
    n_classes = dataset.n_classes
    trainer = Retrainer(item, input_spec, n_classes)
    model = _cached_model(item, dataset, input_spec, n_classes, trainer)
    trainer.deployed = model
    return item.recipe.as_target(model, input_spec=input_spec, n_classes=n_classes, spec=f"zoo:{name}", trainer=trainer)


def build_all(progress: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
    """Build (or load) every zoo model; returns seconds per name. ``progress(name, done, total)``."""
    seconds: dict[str, float] = {}
    all_names = names()
    for done, name in enumerate(all_names, start=1):
        start = time.perf_counter()
        load_target(name)
        seconds[name] = time.perf_counter() - start
        if progress is not None:
            progress(name, done, len(all_names))
    return seconds


def input_spec_for(dataset: Dataset) -> InputSpec:
    """Images: their shape in [0, 1]. Tables: observed bounds, plus the allowed codes of each
    feature when the data set lists them (``meta["feature_values"]``), so attacks stay realistic."""
    shape = tuple(int(s) for s in dataset.x_train.shape[1:])
    if dataset.modality == "image":
        return InputSpec(shape=shape, dtype="float32", lower=0.0, upper=1.0)
    values = dataset.meta.get("feature_values") or {}
    names_ = dataset.feature_names or []
    categorical = tuple(
        (i, tuple(float(v) for v in values[feature])) for i, feature in enumerate(names_) if feature in values
    )
    rows = [dataset.x_train, dataset.x_test] + ([dataset.x_pool] if dataset.x_pool is not None else [])
    return InputSpec.from_data(np.concatenate(rows), constraints=FeatureConstraints(categorical=categorical))


class Retrainer:
    """``trainer(x, y, seed) -> Target``: a zoo recipe retrained on other data (reference
    models, poisoned retraining). Once ``deployed`` is set, retraining starts from it as the
    recipe says (a transfer-learning recipe keeps its feature extractor)."""

    def __init__(self, item: ZooEntry, input_spec: InputSpec, n_classes: int):
        self.entry = item
        self.input_spec = input_spec
        self.n_classes = n_classes
        self.deployed: Any = None

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Target:
        x, y = np.asarray(x), np.asarray(y)
        if tuple(x.shape[1:]) != tuple(self.input_spec.shape):
            raise TargetError(f"zoo:{self.entry.name}: retraining needs rows shaped {self.input_spec.shape}, got {x.shape[1:]}")
        if len(x) != len(y) or not len(x):
            raise TargetError(f"zoo:{self.entry.name}: retraining needs as many labels as rows (got {len(x)} and {len(y)})")
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= self.n_classes:
            raise TargetError(f"zoo:{self.entry.name}: labels must be class indices in [0, {self.n_classes})")
        x = x.astype(self.input_spec.dtype, copy=False)
        recipe = self.entry.recipe
        try:
            model = recipe.train(x, y, int(seed)) if self.deployed is None else recipe.retrain(self.deployed, x, y, int(seed))
        except TrainingRefused as exc:
            raise TargetError(f"zoo:{self.entry.name}: retraining failed: {exc}") from None
        return self.entry.recipe.as_target(
            model, input_spec=self.input_spec, n_classes=self.n_classes,
            spec=f"zoo:{self.entry.name}@retrained", trainer=self,
        )

    def __repr__(self) -> str:
        return f"Retrainer(zoo:{self.entry.name})"


def _wrapped(item: ZooEntry, inner: Target) -> Target:
    if item.outputs != "labels":
        raise TargetError(f"zoo:{item.name}: no wrapper for outputs={item.outputs!r}")
    target = LabelOnlyTarget(inner)
    target.spec = f"zoo:{item.name}"
    return target


def _cache_key(item: ZooEntry, dataset: Dataset) -> str:
    return cache.cache_key(
        {
            **item.recipe.fingerprint(),
            "entry": item.name,
            "seed": item.seed,
            "data": _data_digest(dataset),
            "redline": __version__,
            "framework": item.recipe.framework(),
        }
    )


def _cached_model(item: ZooEntry, dataset: Dataset, input_spec: InputSpec, n_classes: int, trainer: Retrainer) -> Any:
    recipe = item.recipe
    key = _cache_key(item, dataset)
    shape = input_spec.shape
    stored = cache.read(item.name, key, recipe.suffix)
    if stored is not None:
        try:
            return recipe.loads(stored[0], shape)
        except InvalidModelFile as exc:
            log.warning("zoo cache for %s cannot be loaded (%s); rebuilding", item.name, exc)
    base = base_entry(item)
    start = time.perf_counter()
    if base is not None:
        # Another entry trains the model this one starts from: build on it (cached or built once).
        log.info("building zoo model %s from %s", item.name, base.name)
        base_model = _cached_model(base, dataset, input_spec, n_classes, Retrainer(base, input_spec, n_classes))
        model = recipe.derive(base_model, dataset.x_train, dataset.y_train, item.seed)
    else:
        log.info("training zoo model %s", item.name)
        model = recipe.train(dataset.x_train, dataset.y_train, item.seed)
    seconds = time.perf_counter() - start
    probe = recipe.as_target(model, input_spec=input_spec, n_classes=n_classes, spec=f"zoo:{item.name}", trainer=trainer)
    record = {
        "entry": item.name,
        "recipe": recipe.fingerprint(),
        "redline": __version__,
        "framework": recipe.framework(),
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "train_seconds": round(seconds, 3),
        "train_accuracy": _accuracy(probe, dataset.x_train, dataset.y_train),
        "test_accuracy": _accuracy(probe, dataset.x_test, dataset.y_test),
    }
    cache.write(item.name, key, recipe.suffix, recipe.dumps(model), record)
    return model


def base_entry(item: ZooEntry) -> ZooEntry | None:
    """The entry whose trained model ``item``'s recipe starts from (its ``base_recipe``, on the
    same data, data variant and seed), or None when no entry trains it."""
    wanted = item.recipe.base_recipe()
    if wanted is None:
        return None
    for other in ENTRIES:
        if (other is not item and other.serves is None and other.recipe == wanted and other.data == item.data
                and other.data_variant is item.data_variant and other.seed == item.seed):
            return other
    return None


def _accuracy(target: Target, x: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean(target.predict_labels(x) == y)), 4)


def _data_digest(dataset: Dataset) -> str:
    """Fingerprint of the training rows, so a changed split or source invalidates the cache."""
    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _latest_record(stored_as: str, item: ZooEntry) -> dict[str, Any] | None:
    """The newest build record of this recipe and redline version, found without loading data."""
    folder = cache.zoo_dir()
    fingerprint = json.loads(json.dumps(item.recipe.fingerprint()))  # as stored: tuples become lists
    best: dict[str, Any] | None = None
    for path in folder.glob(f"{stored_as}-*.json"):
        record = cache.read_record(stored_as, path.stem.rsplit("-", 1)[1], item.recipe.suffix)
        current = bool(record) and record.get("recipe") == fingerprint and record.get("redline") == __version__
        if current and (best is None or str(record.get("built_at")) > str(best.get("built_at"))):
            best = record
    if best is None:
        return None
    return {k: best[k] for k in ("built_at", "train_seconds", "train_accuracy", "test_accuracy") if k in best}
