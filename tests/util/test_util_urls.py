"""util.urls.redact_url: query values and user info never recorded."""

from __future__ import annotations

from redline.util.urls import redact_url


def test_query_values_and_user_info_are_redacted():
    assert redact_url("https://u:pw@h.example:8443/p?apikey=S3&x=1&tok") == (
        "https://REDACTED@h.example:8443/p?apikey=REDACTED&x=REDACTED&REDACTED"
    )
    assert redact_url("http://h/p") == "http://h/p"
    assert redact_url("zoo:digits_logreg") == "zoo:digits_logreg"
    assert redact_url("onnx:model?.onnx") == "onnx:model?.onnx"
