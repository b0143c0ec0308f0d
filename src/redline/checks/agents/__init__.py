"""Checks of agents (FM12 reward gaming, FM13 side effects, FM14 shift of a policy): they run
a policy target in an environment given as ``env:`` data and compare what it earns with
what its designer wanted."""
