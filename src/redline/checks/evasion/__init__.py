"""Evasion checks (FM01 perturbation, FM06 reprogramming, FM07 physical domain) and the
attack helpers only they use."""
