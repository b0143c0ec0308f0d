"""A hand-built report with one finding of each status, hostile text and real plots (shared by the report tests)."""
from __future__ import annotations

import numpy as np

from redline.catalog import MODE_CODES
from redline.findings import Finding, Status
from redline.report import Report
from redline.severity import Severity
from redline.util import plots

HOSTILE = '<script>alert("x")</script> & "quotes" Zürich ✓ 日本'
TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: boom \x1b[31m<b>red</b>\x1b[0m'


def make_findings() -> list[Finding]:
    return [
        Finding(
            id="0123456789abcdef",
            mode="FM04",
            check="FM04.lira",
            title="Likelihood-ratio membership inference",
            status=Status.VULNERABLE,
            severity=Severity.CRITICAL,
            rationale=f"Training records are identifiable at low false-positive rates. {HOSTILE}",
            metrics={
                "auc": 0.81,
                "tpr_at_fpr_0.001": 0.12,
                "tpr_at_fpr_0.01": float("nan"),
                "advantage": float("inf"),
                "per_class_auc": [0.8, 0.82],
            },
            evidence={"plots": ["artifacts/roc.png"], "scores": "artifacts/FM04.lira.npz", "note": HOSTILE},
            params={"n_shadow": 8, "online": True},
            seed=3,
            queries=12345,
            evaluation_queries=500,
            seconds=12.34,
            summary="The attacker tells members from non-members.",
        ),
        Finding(
            id="1111111111111111",
            mode="FM01",
            check="FM01.pgd",
            title="Projected gradient descent evasion",
            status=Status.VULNERABLE,
            severity=Severity.MODERATE,
            rationale="Small L-inf perturbations flip most predictions.",
            metrics={"success_rate": 0.93, "median_linf": 0.03, "clean_accuracy": 0.97, "robust_accuracy": 0.07},
            evidence={"plots": ["artifacts/curve.png", "artifacts/examples.png"]},
            params={"eps": 0.03, "steps": 40},
            seed=0,
            queries=4000,
            evaluation_queries=200,
            seconds=3.2,
        ),
        Finding(
            id="2222222222222222",
            mode="FM05",
            check="FM05.equation_solving",
            title="Equation-solving model extraction",
            status=Status.NOT_VULNERABLE,
            metrics={"fidelity": 0.41, "queries": 300},
            seed=0,
            queries=300,
            evaluation_queries=1000,
            seconds=0.5,
        ),
        Finding(
            id="3333333333333333",
            mode="FM03",
            check="FM03.attribute_inference",
            title="Attribute inference",
            status=Status.NOT_APPLICABLE,
            reason=f"the target returns labels only {HOSTILE}",
            seed=0,
        ),
        Finding(
            id="4444444444444444",
            mode="FM10",
            check="FM10.neural_cleanse",
            title="Neural Cleanse backdoor scan",
            status=Status.ERROR,
            reason="RuntimeError: boom \x1b[31m\x00",
            evidence={"traceback": TRACEBACK},
            seed=1,
            queries=10,
            evaluation_queries=0,
            seconds=0.25,
        ),
        Finding(
            id="5555555555555555",
            mode="FM04",
            check="FM04.threshold",
            title="Membership inference by loss or confidence threshold",
            status=Status.INCONCLUSIVE,
            rationale="No severity: FM04.threshold ran but could not decide.",
            reason="25 non-members cannot measure a 1.0% false-positive rate; 100 members and 100 non-members would decide",
            metrics={"auc": 0.55, "tpr_at_fpr_0.01": None, "auc_p_value": 0.3},
            seed=0,
            queries=50,
            seconds=0.1,
        ),
    ]


def make_coverage() -> dict[str, str]:
    coverage = {code: "not_covered" for code in MODE_CODES}
    coverage.update(FM01="tested", FM04="tested", FM05="tested", FM10="tested", FM03="not_applicable")
    return coverage


def make_report(out_dir=None) -> Report:
    return Report(
        target={
            "spec": "zoo:digits_overfit",
            "capabilities": {"outputs": "probabilities", "gradients": True, "trainable": True, "remote": False},
            "n_classes": 10,
        },
        data={"spec": "builtin:digits"},
        started_at="2024-05-01T10:00:00+00:00",
        finished_at="2024-05-01T10:01:05+00:00",
        findings=make_findings(),
        coverage=make_coverage(),
        tool={"name": "redline", "version": "0.1.0"},
        context={"exposure": "internet"},
        out_dir=None if out_dir is None else str(out_dir),
    )


def draw_artifacts(out_dir) -> None:
    art = out_dir / "artifacts"
    plots.roc_plot(art / "roc.png", {"LiRA": ([0.0, 0.001, 0.01, 0.1, 1.0], [0.0, 0.12, 0.3, 0.6, 1.0])})
    plots.line_plot(
        art / "curve.png",
        {"success rate": ([0.01, 0.02, 0.03], [0.2, 0.6, 0.93])},
        title="Attack success against epsilon",
        xlabel="epsilon",
        ylabel="success rate",
    )
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, 8))
    adv = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    plots.image_grid(
        art / "examples.png",
        [list(x), list(adv), list(adv - x)],
        row_titles=["original", "adversarial", "difference"],
        col_titles=["a", "b", "c"],
    )
