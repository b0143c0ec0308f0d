"""The fast form of the differential harness (differential.py): candidate files whose canary
payload is checked under the real loaders in sandboxed children. A payload that runs while the
scanner says ``safe`` fails the test. The long form is benchmarks/bench_filescan.py --differential."""
import pytest
from differential import (
    Candidate,
    evaluate,
    payload_shapes,
    small_models,
    spliced_models,
    torch_spliced,
    torch_zip64_hidden_directory,
    torch_zip64_two_directories,
)

# the files of issue 21's techniques: their payload must be confirmed to run under some loader
CONFIRMED = {"gadget-ufunc-setstate", "gadget-ufunc-setstate-estimator", "tar-header", "joblib-dtype-size",
             "prefix-long-hex", "prefix-int-nul", "prefix-float-nul", "npy-object"}


def _report(outcomes):
    return "\n".join(f"{o.candidate.name}: {o.verdict} fired={o.fired} {o.details[:120]}" for o in outcomes)


def test_payload_shapes_and_text_numbers(tmp_path):
    from differential import number_prefixes

    pytest.importorskip("numpy")
    outcomes = evaluate(payload_shapes() + number_prefixes(), tmp_path)
    missed = [o for o in outcomes if o.missed]
    assert not missed, _report(missed)
    by_name = {o.candidate.name: o for o in outcomes}
    unconfirmed = [n for n in CONFIRMED if n in by_name and not any(by_name[n].fired.values())]
    assert not unconfirmed, "payloads that should run did not:\n" + _report([by_name[n] for n in unconfirmed])
    assert all(by_name[n].verdict == "unsafe" for n in CONFIRMED if n in by_name)


def test_payload_spliced_into_real_pickles(tmp_path):
    pytest.importorskip("sklearn")
    candidates = spliced_models(small_models(), every=25)
    outcomes = evaluate(candidates, tmp_path, loaders={"pickle"}, preload=("sklearn.linear_model", "sklearn.tree"))
    assert not [o for o in outcomes if o.missed], _report([o for o in outcomes if o.missed])
    fired = sum(o.fired.get("pickle", False) for o in outcomes)
    assert fired >= 0.8 * len(outcomes)  # the splices are real: most run before the loader stops


def test_torch_archives(tmp_path):
    """A payload in data.pkl, and a zip64 locator that sends PyTorch's reader to a second
    central directory whose data.pkl carries the payload while Python's zipfile reads a clean one."""
    pytest.importorskip("torch")
    candidates = [Candidate("torch-data-pkl", torch_spliced, loaders=("torch",), suffix=".pt"),
                  Candidate("torch-zip64-two-directories", torch_zip64_two_directories, loaders=("torch",), suffix=".pt"),
                  Candidate("torch-zip64-hidden-directory", torch_zip64_hidden_directory, loaders=("torch",), suffix=".pt")]
    outcomes = evaluate(candidates, tmp_path, loaders={"torch"}, timeout=60)
    assert all(o.fired.get("torch") for o in outcomes), _report(outcomes)
    assert all(o.verdict != "safe" for o in outcomes), _report(outcomes)
    # the second directory hides in tensor bytes: only the locator check can see it
    assert all("zip64 locator points away" in o.details for o in outcomes[1:]), _report(outcomes)
