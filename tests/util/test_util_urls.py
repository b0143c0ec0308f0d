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


def test_a_url_that_does_not_parse_keeps_only_its_scheme_and_host():
    assert redact_url("http://user:SECRETPW@[::1/ok?k=v") == "http://REDACTED@[::1/REDACTED"
    assert redact_url("https://[::1/p?token=SECRET") == "https://[::1/REDACTED"
