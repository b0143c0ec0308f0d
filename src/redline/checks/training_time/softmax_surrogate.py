"""A softmax-regression surrogate and the exact gradient of its optimum with respect to training rows.

Poisoning attacks solve a bilevel problem: choose training rows so that the model trained
on them does what the attacker wants. For an L2-regularised softmax regression the inner
problem is smooth and strongly convex, so a few damped Newton steps solve it and the
implicit-function theorem gives the outer gradient exactly (the influence-function form):
no unrolling of the training run is needed. Functions take the ``torch`` module as their
first argument so that importing this module stays free of torch.

``theta`` is a (features + 1, classes) tensor: weights, then the intercepts in the last row.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def logits(x: Any, theta: Any) -> Any:
    return x @ theta[:-1] + theta[-1]


def train_loss(torch: Any, theta: Any, x: Any, y: Any, l2: float) -> Any:
    """Mean cross-entropy plus an L2 penalty on the weights (not the intercepts); ``l2 = 1 / (C n)``
    matches scikit-learn's ``LogisticRegression(C=C)`` on ``n`` rows."""
    return torch.nn.functional.cross_entropy(logits(x, theta), y) + 0.5 * l2 * (theta[:-1] ** 2).sum()


def expected_error(torch: Any, theta: Any, x: Any, y: Any) -> Any:
    """The mean probability put on wrong classes: a smooth stand-in for the error rate
    (cross-entropy would reward making already-wrong rows more wrong)."""
    return 1.0 - torch.softmax(logits(x, theta), dim=1)[torch.arange(len(y)), y].mean()


def hessian(torch: Any, theta: Any, x: Any, l2: float) -> Any:
    """Exact Hessian of :func:`train_loss` in ``theta`` flattened row-major ((d + 1) * k square)."""
    n, k = len(x), theta.shape[1]
    p = torch.softmax(logits(x, theta), dim=1)
    curvature = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    xt = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    size = xt.shape[1] * k
    h = torch.einsum("ni,nj,nab->iajb", xt, xt, curvature).reshape(size, size) / n
    penalty = torch.cat([torch.full(((xt.shape[1] - 1) * k,), l2), torch.zeros(k)]).to(x.dtype)
    # The intercepts of all classes can shift together without changing the loss; a tiny
    # ridge keeps the system solvable.
    return h + torch.diag(penalty + 1e-8)


def fit_newton(torch: Any, theta: Any, x: Any, y: Any, l2: float, iterations: int) -> Any:
    """Softmax regression fitted by damped Newton steps from ``theta``; halving a step until
    the loss falls keeps a far start from overshooting."""
    theta = theta.detach().clone()
    for _ in range(iterations):
        theta.requires_grad_(True)
        loss = train_loss(torch, theta, x, y, l2)
        g = torch.autograd.grad(loss, theta)[0].reshape(-1)
        if float(g.abs().max()) < 1e-10:
            break
        with torch.no_grad():
            direction = torch.linalg.solve(hessian(torch, theta, x, l2), g).reshape(theta.shape)
            theta, step = theta.detach(), 1.0
            for _ in range(30):
                trial = theta - step * direction
                if float(train_loss(torch, trial, x, y, l2)) <= float(loss):
                    break
                step /= 2
            theta = trial
    return theta.detach()


def implicit_gradient(
    torch: Any, theta: Any, x_fixed: Any, y_fixed: Any, xp: Any, yp: Any, l2: float,
    objective: Callable[[Any], Any],
) -> Any:
    """d objective(theta*) / d xp, where theta* (given) minimises the training loss on the
    fixed rows plus the rows ``xp`` (labels ``yp``).

    At the optimum the training gradient is zero; differentiating that condition gives
    d theta / d xp = -H^-1 d^2 L / d theta d xp, so the gradient is -v . d(grad_theta L)/d xp
    with v = H^-1 grad_theta objective: one linear solve and two backward passes.
    """
    theta = theta.detach().requires_grad_(True)
    g_obj = torch.autograd.grad(objective(theta), theta)[0].reshape(-1)
    v = torch.linalg.solve(hessian(torch, theta.detach(), torch.cat([x_fixed, xp.detach()]), l2), g_obj)
    xp = xp.detach().requires_grad_(True)
    g_train = torch.autograd.grad(
        train_loss(torch, theta, torch.cat([x_fixed, xp]), torch.cat([y_fixed, yp]), l2), theta, create_graph=True
    )[0].reshape(-1)
    return -torch.autograd.grad(g_train @ v, xp)[0]
