"""The ``operating_conditions`` section of a system description: the conditions a model will
meet in operation, which FM17 (incomplete testing) compares with what was tested.

The YAML form (every section optional, every list entry may carry a ``name``)::

    operating_conditions:
      min_rows: 30                  # rows a category, a population or a range band needs
      class_priors: {0: 0.7, 1: 0.3}   # expected share of each class (index or class name)
      features:
        - feature: age              # a feature name of the data, or a 0-based column index
          range: [17.5, 42]         # the values it will take, split into `bands` equal bands
          bands: 4
        - feature: religious
          categories: [1, 2, 3, 4]  # the values it will take, each needing min_rows rows
      populations:
        - name: long marriages
          where: {yrs_married: {range: [13, 23]}, religious: {in: [1, 2]}, children: 0}
          min_share: 0.1            # the least share of operating traffic it makes up
      sensors:
        - name: skipped questions
          corruption: missing_values   # an FM16 corruption family (image or tabular)
          severity: 2                  # 1..5 (default 3)
      drift:
        - name: older respondents
          feature: age
          shift: 5                  # added to the feature, in its units (or scale: 1.1)

Parsing checks the structure only, with one-line :class:`UsageError`\\ s naming the key at
fault; feature names are resolved against the data when a check runs (:meth:`resolve`).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import UsageError

#: Rows a category, a population or a range band needs unless ``min_rows`` says otherwise.
#: 30 rows are about the fewest on which a one-sided exact test tells a subgroup with 75%
#: accuracy from one with 90% (a 15-point drop) with 80% power at alpha 5% (33 by the normal
#: approximation, see :func:`redline.checks.robustness.adequacy.rows_to_detect_drop`); with
#: fewer, a subgroup that fails badly is indistinguishable from one that works.
DEFAULT_MIN_ROWS = 30
DEFAULT_BANDS = 4
DEFAULT_SEVERITY = 3

SECTION = "operating_conditions"
_TOP_KEYS = ("min_rows", "class_priors", "features", "populations", "sensors", "drift")
_FEATURE_KEYS = ("name", "feature", "range", "categories", "bands")
_POPULATION_KEYS = ("name", "where", "min_share")
_SENSOR_KEYS = ("name", "corruption", "severity")
_DRIFT_KEYS = ("name", "feature", "shift", "scale")
_WHERE_KEYS = ("range", "in")


@dataclasses.dataclass(frozen=True)
class Clause:
    """One test on a feature: a closed range, a set of values, or one value."""

    feature: str | int
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.low is not None:
            return f"{self.feature} in [{self.low:g}, {self.high:g}]"
        if len(self.values) == 1:
            return f"{self.feature} = {self.values[0]:g}"
        return f"{self.feature} in {{{', '.join(f'{v:g}' for v in self.values)}}}"


@dataclasses.dataclass(frozen=True)
class FeatureRange:
    name: str
    feature: str | int
    low: float
    high: float
    bands: int


@dataclasses.dataclass(frozen=True)
class FeatureCategories:
    name: str
    feature: str | int
    values: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Population:
    name: str
    where: tuple[Clause, ...]
    min_share: float | None


@dataclasses.dataclass(frozen=True)
class Sensor:
    name: str
    corruption: str
    severity: int


@dataclasses.dataclass(frozen=True)
class Drift:
    name: str
    feature: str | int
    shift: float = 0.0
    scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class OperatingConditions:
    """The parsed section; ``source`` says where it came from (for the finding), ``path`` the
    YAML file that holds it, if any (recorded so that ``redline replay`` can read it again)."""

    min_rows: int = DEFAULT_MIN_ROWS
    class_priors: tuple[tuple[str | int, float], ...] = ()
    features: tuple[FeatureRange | FeatureCategories, ...] = ()
    populations: tuple[Population, ...] = ()
    sensors: tuple[Sensor, ...] = ()
    drift: tuple[Drift, ...] = ()
    source: str = ""
    path: str = ""

    @property
    def total(self) -> int:
        return len(self.features) + len(self.populations) + len(self.sensors) + len(self.drift)


def parse_operating_conditions(raw: Any, source: str = "", path: str = "") -> OperatingConditions | None:
    """The section ``raw`` (the value under ``operating_conditions``) parsed; None for None."""
    if raw is None:
        return None
    where = SECTION
    mapping = _mapping(raw, where)
    _known_keys(mapping, _TOP_KEYS, where)
    min_rows = _whole(mapping.get("min_rows", DEFAULT_MIN_ROWS), f"{where}.min_rows", least=1)
    priors = _priors(mapping.get("class_priors"), f"{where}.class_priors")
    features = tuple(_feature(item, f"{where}.features[{i}]")
                     for i, item in enumerate(_list(mapping.get("features"), f"{where}.features")))
    populations = tuple(_population(item, f"{where}.populations[{i}]")
                        for i, item in enumerate(_list(mapping.get("populations"), f"{where}.populations")))
    sensors = tuple(_sensor(item, f"{where}.sensors[{i}]")
                    for i, item in enumerate(_list(mapping.get("sensors"), f"{where}.sensors")))
    drift = tuple(_drift(item, f"{where}.drift[{i}]")
                  for i, item in enumerate(_list(mapping.get("drift"), f"{where}.drift")))
    conditions = OperatingConditions(min_rows, priors, features, populations, sensors, drift, source, str(path))
    if not conditions.total and not priors:
        raise UsageError(f"{where} declares no condition (give features, populations, sensors, drift "
                         f"or class_priors)")
    names = [c.name for c in (*features, *populations, *sensors, *drift)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{where}: the condition name {twice[0]!r} is used twice (give each a distinct name)")
    return conditions


def from_document(document: Any, source: str = "") -> OperatingConditions | None:
    """The conditions of a whole system description (a mapping), or None when it has none."""
    if not isinstance(document, Mapping):
        return None
    return parse_operating_conditions(document.get(SECTION), source)


def load_conditions_file(path: str | Path) -> OperatingConditions:
    """A YAML file holding either a system description with the section, or the section itself."""
    from ...util.safe_yaml import load_yaml_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"operating conditions file not found: {path}")
    document = load_yaml_file(path, "operating conditions file")
    if isinstance(document, Mapping) and SECTION in document:
        document = document[SECTION]
    conditions = parse_operating_conditions(document, str(path), str(path))
    if conditions is None:
        raise UsageError(f"operating conditions file {path} is empty")
    return conditions


# -- resolving features against the data ------------------------------------------------------

def resolve_feature(feature: str | int, names: Sequence[str] | None, width: int, where: str) -> int:
    """The column index of ``feature`` (a name of the data's features or an index below ``width``)."""
    if isinstance(feature, int):
        if not 0 <= feature < width:
            raise UsageError(f"{where}: feature index {feature} is out of range (the inputs have {width} features)")
        return feature
    if names is None:
        raise UsageError(f"{where}: feature {feature!r} is a name, and the data set has no feature names "
                         f"(use a 0-based column index)")
    if feature not in names:
        raise UsageError(f"{where}: the data set has no feature {feature!r} (has: {', '.join(names)})")
    return list(names).index(feature)


# -- the parts -------------------------------------------------------------------------------

def _feature(item: Any, where: str) -> FeatureRange | FeatureCategories:
    mapping = _mapping(item, where)
    _known_keys(mapping, _FEATURE_KEYS, where)
    feature = _feature_ref(mapping, where)
    has_range, has_values = "range" in mapping, "categories" in mapping
    if has_range == has_values:
        raise UsageError(f"{where} needs exactly one of 'range' or 'categories'")
    if has_values:
        if "bands" in mapping:
            raise UsageError(f"{where}.bands applies to a range, not to categories")
        values = _values(mapping["categories"], f"{where}.categories")
        return FeatureCategories(_name(mapping, f"{feature} categories"), feature, values)
    low, high = _range(mapping["range"], f"{where}.range")
    bands = _whole(mapping.get("bands", DEFAULT_BANDS), f"{where}.bands", least=1)
    return FeatureRange(_name(mapping, f"{feature} range"), feature, low, high, bands)


def _population(item: Any, where: str) -> Population:
    mapping = _mapping(item, where)
    _known_keys(mapping, _POPULATION_KEYS, where)
    if "name" not in mapping:
        raise UsageError(f"{where} needs a 'name'")
    rules = _mapping(mapping.get("where"), f"{where}.where")
    if not rules:
        raise UsageError(f"{where}.where must name at least one feature")
    tests = []
    for feature, test in rules.items():
        at = f"{where}.where.{feature}"
        ref = _feature_key(feature, at)
        if isinstance(test, Mapping):
            _known_keys(test, _WHERE_KEYS, at)
            if len(test) != 1:
                raise UsageError(f"{at} needs exactly one of 'range' or 'in'")
            if "range" in test:
                low, high = _range(test["range"], f"{at}.range")
                tests.append(Clause(ref, low, high))
            else:
                tests.append(Clause(ref, values=_values(test["in"], f"{at}.in")))
        else:
            tests.append(Clause(ref, values=(_number(test, at),)))
    share = mapping.get("min_share")
    if share is not None:
        share = _number(share, f"{where}.min_share")
        if not 0 < share <= 1:
            raise UsageError(f"{where}.min_share must be in (0, 1], not {share:g}")
    return Population(_name(mapping, ""), tuple(tests), share)


def _sensor(item: Any, where: str) -> Sensor:
    from .corruptions import families

    mapping = _mapping(item, where)
    _known_keys(mapping, _SENSOR_KEYS, where)
    corruption = mapping.get("corruption")
    known = {**families("image"), **families("tabular")}
    if not isinstance(corruption, str) or corruption not in known:
        raise UsageError(f"{where}.corruption must name an FM16 corruption family, not {corruption!r} "
                         f"(known: {', '.join(known)})")
    severity = _whole(mapping.get("severity", DEFAULT_SEVERITY), f"{where}.severity", least=1)
    if severity > 5:
        raise UsageError(f"{where}.severity must be 1..5, not {severity}")
    return Sensor(_name(mapping, f"{corruption} at severity {severity}"), corruption, severity)


def _drift(item: Any, where: str) -> Drift:
    mapping = _mapping(item, where)
    _known_keys(mapping, _DRIFT_KEYS, where)
    feature = _feature_ref(mapping, where)
    if ("shift" in mapping) == ("scale" in mapping):
        raise UsageError(f"{where} needs exactly one of 'shift' or 'scale'")
    if "shift" in mapping:
        shift = _number(mapping["shift"], f"{where}.shift")
        return Drift(_name(mapping, f"{feature} shifted by {shift:g}"), feature, shift=shift)
    scale = _number(mapping["scale"], f"{where}.scale")
    if scale <= 0:
        raise UsageError(f"{where}.scale must be positive, not {scale:g}")
    return Drift(_name(mapping, f"{feature} scaled by {scale:g}"), feature, scale=scale)


def _priors(value: Any, where: str) -> tuple[tuple[str | int, float], ...]:
    if value is None:
        return ()
    mapping = _mapping(value, where)
    priors = []
    for label, share in mapping.items():
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise UsageError(f"{where}: a class is an index or a class name, not {label!r}")
        share = _number(share, f"{where}.{label}")
        if not 0 <= share <= 1:
            raise UsageError(f"{where}.{label} must be a share in [0, 1], not {share:g}")
        priors.append((label, share))
    total = sum(s for _, s in priors)
    if len(priors) < 2 or abs(total - 1.0) > 0.01:
        raise UsageError(f"{where} must give two or more classes whose shares add up to 1 (they add up to {total:g})")
    return tuple(priors)


# -- small validators ------------------------------------------------------------------------

def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(f"{where} must be a mapping, not {_show(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(f"{where} must be a list, not {_show(value)}")
    return value


def _known_keys(mapping: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in valid and not str(key).startswith("x-"):
            raise UsageError(f"{where}: unknown key {key!r} (valid: {', '.join(valid)})")


def _feature_ref(mapping: Mapping[str, Any], where: str) -> str | int:
    if "feature" not in mapping:
        raise UsageError(f"{where} needs a 'feature' (a feature name or a 0-based column index)")
    return _feature_key(mapping["feature"], f"{where}.feature")


def _feature_key(value: Any, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise UsageError(f"{where} must be a feature name or a 0-based column index, not {_show(value)}")
    if isinstance(value, int) and value < 0:
        raise UsageError(f"{where} must be a 0-based column index, not {value}")
    return value


def _name(mapping: Mapping[str, Any], default: str) -> str:
    name = mapping.get("name", default)
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"a condition's name must be a non-empty string, not {_show(name)}")
    return name.strip()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where} must be a finite number, not {_show(value)}")
    return float(value)


def _whole(value: Any, where: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{where} must be a whole number of at least {least}, not {_show(value)}")
    return value


def _range(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise UsageError(f"{where} must be [low, high], not {_show(value)}")
    low, high = _number(value[0], where), _number(value[1], where)
    if not low < high:
        raise UsageError(f"{where} must have low < high, not [{low:g}, {high:g}]")
    return low, high


def _values(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where} must be a non-empty list of values, not {_show(value)}")
    values = tuple(_number(v, where) for v in value)
    if len(set(values)) != len(values):
        raise UsageError(f"{where} lists a value twice")
    return values


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- what both FM17 checks share -----------------------------------------------------------------

def chosen_conditions(path: str | None, ctx: Any, data: Any = None) -> OperatingConditions | None:
    """The conditions of the file a check's ``conditions`` parameter names, else those the
    scan read from the ``--context`` description (``ctx.operating_conditions``), else those the
    data set declares (a file named in ``data.meta["operating_conditions"]``, as the zoo's
    controls do), else None."""
    if path:
        return load_conditions_file(path)
    declared = getattr(ctx, "operating_conditions", None)
    if declared is not None:
        return declared
    own = (getattr(data, "meta", None) or {}).get("operating_conditions")
    return load_conditions_file(own) if own else None


def clause_mask(clause: Clause, rows: Any, names: Sequence[str] | None, where: str) -> Any:
    """Booleans: which ``rows`` (n, d) satisfy ``clause``."""
    column = rows[:, resolve_feature(clause.feature, names, rows.shape[1], where)]
    if clause.low is not None:
        return (column >= clause.low) & (column <= clause.high)
    return matches_any(column, clause.values)


def matches_any(column: Any, values: Sequence[float]) -> Any:
    """Booleans: which entries of ``column`` equal one of ``values`` (to float32 precision,
    so a code written 0.1 in YAML finds the float32 0.1 of the data)."""
    import numpy as np

    column = np.asarray(column, dtype=np.float64)[:, None]
    wanted = np.asarray(values, dtype=np.float64)[None, :]
    return np.isclose(column, wanted, rtol=1e-6, atol=1e-9).any(axis=1)


def population_mask(population: Population, rows: Any, names: Sequence[str] | None) -> Any:
    """Booleans: which ``rows`` (n, d) belong to ``population`` (every clause holds)."""
    import numpy as np

    mask = np.ones(len(rows), bool)
    for clause in population.where:
        mask &= clause_mask(clause, rows, names, f"population {population.name!r}")
    return mask
