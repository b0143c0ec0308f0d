"""Equation solving for one-hidden-layer networks: fit the parameters to probability answers.

``logits = act(x W1 + b1) W2 + b2``; softmax answers fix the logits up to a per-row shift,
so the fit minimises the squared misfit of log-ratios to each row's most likely class
(entries the target rounded to exactly 0 carry no equation and are left out). Inputs are
standardised for the optimiser and the scaling folded back into ``W1, b1`` afterwards.
torch and scipy are imported inside the functions.
"""
from __future__ import annotations

import dataclasses

import numpy as np

ACTIVATIONS = ("relu", "tanh", "logistic")


@dataclasses.dataclass
class MlpParameters:
    """``w1`` (d, h), ``b1`` (h,), ``w2`` (h, k), ``b2`` (k,) of a one-hidden-layer network."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    activation: str
    answer_error: float = float("nan")  # largest log-ratio misfit on the answered queries

    @property
    def hidden(self) -> int:
        return int(self.w1.shape[1])

    def logits(self, flat: np.ndarray) -> np.ndarray:
        z = flat @ self.w1 + self.b1
        if self.activation == "relu":
            a = np.maximum(z, 0.0)
        elif self.activation == "tanh":
            a = np.tanh(z)
        else:
            a = 1.0 / (1.0 + np.exp(-z))
        return a @ self.w2 + self.b2

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def to_torch(self):
        """The network as a float32 ``torch.nn.Sequential`` returning logits."""
        import torch
        from torch import nn

        d, h = self.w1.shape
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid}[self.activation]()
        first, second = nn.Linear(d, h), nn.Linear(h, self.w2.shape[1])
        with torch.no_grad():
            first.weight.copy_(torch.as_tensor(self.w1.T, dtype=torch.float32))
            first.bias.copy_(torch.as_tensor(self.b1, dtype=torch.float32))
            second.weight.copy_(torch.as_tensor(self.w2.T, dtype=torch.float32))
            second.bias.copy_(torch.as_tensor(self.b2, dtype=torch.float32))
        return nn.Sequential(nn.Flatten(), first, act, second).eval()


def fit_one_hidden_layer(
    x: np.ndarray, probs: np.ndarray, hidden: int, activation: str, *, restarts: int = 3, max_iter: int = 300, seed: int = 0
) -> MlpParameters:
    """The best of ``restarts`` L-BFGS fits of a ``hidden``-unit network to (x, probs)."""
    import torch

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < 1e-12] = 1.0
    xs = torch.as_tensor((flat - mean) / std)
    p = np.asarray(probs, dtype=np.float64)
    ref = p.argmax(axis=1)
    rows = np.arange(len(p))
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    valid = torch.as_tensor(np.isfinite(log_p))
    target = torch.as_tensor(np.where(np.isfinite(log_p), log_p - log_p[rows, ref][:, None], 0.0))
    ref_t = torch.as_tensor(ref)
    act = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid}[activation]
    d, k = flat.shape[1], p.shape[1]
    generator = torch.Generator().manual_seed(seed)

    def residual(params):
        w1, b1, w2, b2 = params
        z = act(xs @ w1 + b1) @ w2 + b2
        diff = z - z[torch.arange(len(z)), ref_t][:, None] - target
        return torch.where(valid, diff, torch.zeros_like(diff))

    best, best_loss = None, np.inf
    for _ in range(restarts):
        params = [
            (torch.randn(d, hidden, generator=generator, dtype=torch.float64) / np.sqrt(d)).requires_grad_(),
            (0.1 * torch.randn(hidden, generator=generator, dtype=torch.float64)).requires_grad_(),
            (torch.randn(hidden, k, generator=generator, dtype=torch.float64) / np.sqrt(hidden)).requires_grad_(),
            torch.zeros(k, dtype=torch.float64).requires_grad_(),
        ]
        optimiser = torch.optim.LBFGS(
            params, lr=1.0, max_iter=max_iter, history_size=50, tolerance_grad=1e-12,
            tolerance_change=1e-15, line_search_fn="strong_wolfe",
        )

        def closure(optimiser=optimiser, params=params):
            optimiser.zero_grad()
            loss = residual(params).pow(2).mean()
            loss.backward()
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            loss = float(residual(params).pow(2).mean())
        if np.isfinite(loss) and loss < best_loss:
            best, best_loss = [t.detach().numpy().copy() for t in params], loss
    if best is None:
        raise ValueError("the fit diverged from every start")
    w1, b1, w2, b2 = best
    # Fold the standardisation back: (x - mean) / std @ W1 = x @ (W1 / std) - (mean / std) @ W1.
    fitted = MlpParameters(w1 / std[:, None], b1 - (mean / std) @ w1, w2, b2, activation)
    fitted.answer_error = _answer_error(fitted, flat, log_p, ref)
    return fitted


def _answer_error(fitted: MlpParameters, flat: np.ndarray, log_p: np.ndarray, ref: np.ndarray) -> float:
    z = fitted.logits(flat)
    rows = np.arange(len(z))
    diff = (z - z[rows, ref][:, None]) - (log_p - log_p[rows, ref][:, None])
    return float(np.abs(diff[np.isfinite(diff)]).max())


def one_hidden_layer_parameters(target) -> MlpParameters | None:
    """The auditor's view of an in-memory one-hidden-layer MLP (torch or scikit-learn), else None."""
    module = target.torch_module()
    if module is not None:
        return _from_torch(module)
    estimator = target.sklearn_estimator()
    if type(estimator).__name__ == "MLPClassifier" and len(getattr(estimator, "coefs_", ())) == 2:
        if estimator.activation not in ACTIVATIONS:
            return None
        w1, w2 = (np.asarray(c, dtype=np.float64) for c in estimator.coefs_)
        b1, b2 = (np.asarray(c, dtype=np.float64) for c in estimator.intercepts_)
        if w2.shape[1] == 1:  # binary: p1 = sigmoid(z), i.e. logits (0, z)
            w2, b2 = np.hstack([np.zeros_like(w2), w2]), np.concatenate([[0.0], b2])
        return MlpParameters(w1, b1, w2, b2, estimator.activation)
    return None


def _from_torch(module) -> MlpParameters | None:
    from torch import nn

    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "logistic"}
    layers = [m for m in module.modules() if not isinstance(m, (nn.Sequential, nn.Flatten))]
    if len(layers) != 3 or not isinstance(layers[0], nn.Linear) or not isinstance(layers[2], nn.Linear):
        return None
    activation = names.get(type(layers[1]))
    if activation is None or not isinstance(module, nn.Sequential):
        return None
    first, second = layers[0], layers[2]

    def array(t):
        return t.detach().double().numpy().copy()

    return MlpParameters(array(first.weight).T, array(first.bias), array(second.weight).T, array(second.bias), activation)


def align_error(fitted: MlpParameters, true: MlpParameters) -> float | None:
    """Largest absolute parameter difference once the network's symmetries are factored out.

    Each hidden unit is put in a canonical form (ReLU: incoming weights scaled to unit norm,
    the scale moved to its outgoing weights; tanh: sign fixed by its largest incoming
    weight), units are matched by the assignment that best aligns them, and the output layer
    is compared as differences to the last class. None for logistic units (not handled).
    """
    if fitted.activation != true.activation or fitted.activation == "logistic" or fitted.hidden != true.hidden:
        return None
    from scipy.optimize import linear_sum_assignment

    a_in, a_out = _canonical(fitted)
    b_in, b_out = _canonical(true)
    cost = -np.abs(a_in @ b_in.T) / (np.linalg.norm(a_in, axis=1)[:, None] * np.linalg.norm(b_in, axis=1)[None, :] + 1e-12)
    rows, cols = linear_sum_assignment(cost)
    a_in, a_out = a_in[rows], a_out[rows]
    b_in, b_out = b_in[cols], b_out[cols]
    out_a = np.vstack([a_out, fitted.b2[None, :]])
    out_b = np.vstack([b_out, true.b2[None, :]])
    out_a, out_b = out_a - out_a[:, -1:], out_b - out_b[:, -1:]
    return float(max(np.abs(a_in - b_in).max(), np.abs(out_a - out_b).max()))


def _canonical(p: MlpParameters) -> tuple[np.ndarray, np.ndarray]:
    """(incoming (h, d + 1), outgoing (h, k)) of each hidden unit in canonical form."""
    incoming = np.hstack([p.w1.T, p.b1[:, None]])
    outgoing = p.w2.copy()
    if p.activation == "relu":
        scale = np.linalg.norm(incoming, axis=1)
        scale[scale == 0] = 1.0
        return incoming / scale[:, None], outgoing * scale[:, None]
    sign = np.sign(incoming[np.arange(len(incoming)), np.abs(incoming).argmax(axis=1)])
    sign[sign == 0] = 1.0
    return incoming * sign[:, None], outgoing * sign[:, None]
