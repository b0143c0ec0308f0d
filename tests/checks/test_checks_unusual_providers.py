"""Model inversion and malicious-provider checks on honest models of kinds their authors did not
try: an attribute another column copies, a pruned network, a random forest and k-NN probed
for memorised noise. None may be called a leak or a payload for what it honestly is."""
import copy

import pytest

from redline import zoo
from redline.checks.extraction.fm08_capacity_abuse import CapacityAbuseProbe
from redline.checks.extraction.fm08_exfiltration import ParameterExfiltration
from redline.findings import Status
from redline.targets import load_target


def test_a_pruned_honest_network_carries_no_payload():
    # Half of every layer set to exactly 0: runs of zeros share their low bits, and the
    # serial test alone once said the parameters "carry training data" (p = 0.0).
    torch = pytest.importorskip("torch")
    data = zoo.load_data_for("digits_mlp_overfit")
    module = copy.deepcopy(zoo.load_target("digits_mlp_overfit").module)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2:
                p.mul_((p.norm(dim=1) >= p.norm(dim=1).quantile(0.5))[:, None])
    finding = ParameterExfiltration()(load_target(module, data=data), data, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["lsb_p_value"] > 0.01


@pytest.mark.parametrize("kind", ["forest", "neighbours", "logistic", "mlp"])
def test_a_scikit_learn_model_is_not_judged_against_network_references(kind):
    # An honest forest and 5-NN were flagged at p < 1e-5, a logistic regression at 1.6e-6 and
    # an MLPClassifier with weight decay at 6.4e-4: redline's torch networks do not describe them.
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    from redline.targets.sklearn import SklearnTarget

    data = zoo.load_data_for("digits_mlp_overfit")
    spec = zoo.load_target("digits_mlp_overfit").input_spec
    model = {"forest": RandomForestClassifier(30, random_state=0), "neighbours": KNeighborsClassifier(5),
             "logistic": LogisticRegression(max_iter=1000),
             "mlp": MLPClassifier((64,), alpha=1e-2, max_iter=500, random_state=0)}[kind]
    model.fit(data.x_train.reshape(len(data.x_train), -1), data.y_train)
    finding = CapacityAbuseProbe()(SklearnTarget(model, input_spec=spec, n_classes=10), data, seed=0)
    assert finding.status is not Status.VULNERABLE, finding.summary
    if finding.status is Status.INCONCLUSIVE:
        assert "scikit-learn" in finding.reason and "reference_source=recipe" in finding.reason


def test_a_sharpened_capacity_abuse_model_is_not_passed():
    # The zoo's capacity-abuse MLP with its logits x100: the same labels (the payload reads back
    # unchanged), but most probabilities on noise fall under the floor and its logit field
    # looked flat: 'not_vulnerable' at p = 0.8.
    import torch.nn as nn

    from redline.targets.torch import TorchTarget

    class Sharpened(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) * 100.0

    data = zoo.load_data_for("digits_mlp_malicious_capacity")
    plain = zoo.load_target("digits_mlp_malicious_capacity")
    target = TorchTarget(Sharpened(plain.torch_module()), input_spec=plain.input_spec, n_classes=plain.n_classes)
    finding = CapacityAbuseProbe()(target, data)
    assert finding.status is not Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["saturated_share"] > 0.25
