"""Robustness checks (FM14 distributional shift, FM15 natural adversarial examples, FM16
common corruption): accuracy under transformations of the inputs (FM14, FM16; ``base``), on
slices of unmodified inputs (FM15; ``slices``), and the helpers only they use."""
