"""Training-time checks (FM02 poisoning, FM10 backdoors) and the helpers only they use.

Calibration of the FM10 training-data and runtime detectors (activation clustering,
spectral signatures, STRIP) on honest models they were not tuned on (redline.zoo.honest:
an MLP, a wide one-block CNN, a CNN trained with shifted images): with their default
thresholds they flagged none of them, 0 of 12 on the digits (seeds 0-3) and 0 of 6 on
MNIST (seeds 0-1, ``benchmarks/bench_fm10_calibration.py --quick``), while the zoo's
backdoored CNN stays flagged; tests/checks/test_checks_fm10_calibration.py repeats the
digits sweep.
"""
