"""What a client may send to ``POST /predict``, checked before any defence sees it.

A request body is exactly ``{"inputs": [...]}``: a non-empty batch of rows, nested lists
of numbers of one rectangular shape, at most ``max_batch`` rows, nothing else. JSON's
non-standard ``NaN``/``Infinity`` literals, numbers too large for a float (``1e999``),
booleans, nulls, strings, extra fields and nesting deeper than ``MAX_DEPTH`` are
refused with a :class:`BadRequest` (HTTP 422) and a reason a client can act on.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..defences.base import InputRejected

MAX_DEPTH = 8  # array axes including the batch axis; a row is an image at most (c, h, w) and more


class BadRequest(InputRejected):
    """A body that is not a valid request: HTTP 422 with reason ``bad_request``."""

    status = 422
    reason = "bad_request"


def _refuse_constant(name: str) -> float:
    raise BadRequest(f"{name} is not a number JSON allows")


def parse_inputs(body: bytes, max_batch: int) -> np.ndarray:
    """The batch in ``body`` as a float64 array (rows on axis 0), or BadRequest."""
    try:
        request = json.loads(body, parse_constant=_refuse_constant)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(request, dict):
        raise BadRequest('the body must be a JSON object {"inputs": [...]}')
    extra = sorted(k for k in request if k != "inputs")
    if extra:
        raise BadRequest(f"unknown field {extra[0][:40]!r} (the body is {{\"inputs\": [...]}})")
    if "inputs" not in request:
        raise BadRequest('the body has no "inputs"')
    return _batch(request["inputs"], max_batch, body)


def _batch(inputs: Any, max_batch: int, body: bytes) -> np.ndarray:
    if not isinstance(inputs, list):
        raise BadRequest('"inputs" must be a list of rows')
    if not inputs:
        raise BadRequest('"inputs" is empty')
    if len(inputs) > max_batch:
        raise BadRequest(f"{len(inputs)} rows in one request; the limit is {max_batch}", reason="batch_too_large")
    depth, probe = 1, inputs
    while isinstance(probe, list) and probe:
        probe, depth = probe[0], depth + 1
        if depth > MAX_DEPTH:
            raise BadRequest(f"rows may have at most {MAX_DEPTH - 1} axes")
    if depth < 3 and not isinstance(inputs[0], list):
        raise BadRequest('each row of "inputs" must be a list of numbers')
    # Booleans would pass numpy as 0/1 inside an integer array. The body is one field of
    # numbers, so a true/false literal anywhere in it can only be such a value.
    if b"true" in body or b"false" in body:
        raise BadRequest("inputs must be numbers, not booleans")
    try:
        array = np.array(inputs)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("the rows of \"inputs\" must all have the same shape") from None
    if array.dtype.kind not in "iuf" or array.ndim < 2:
        raise BadRequest('"inputs" must hold numbers only, in rows of one shape')
    array = array.astype(np.float64, copy=False)
    if array.size == 0:
        raise BadRequest("rows must not be empty")
    if not np.isfinite(array).all():
        raise BadRequest("inputs must be finite numbers")
    return array
