"""Robustness checks (FM14 distributional shift, FM15 natural adversarial examples, FM16
common corruption): accuracy under transformations of the inputs, and the helpers only they use."""
