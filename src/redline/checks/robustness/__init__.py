"""Robustness checks (FM14 distributional shift, FM15 natural adversarial examples, FM16
common corruption): accuracy under transformations of the inputs (FM14, FM16; ``base``), on
slices of unmodified inputs (FM15; ``slices``), and the helpers only they use. FM17
(incomplete testing) lives here too: it asks whether the test rows and those checks cover the
conditions a model meets, and runs the corruptions and shifts of its siblings on the
conditions nothing else measured (:mod:`.conditions`, :mod:`.adequacy`)."""
