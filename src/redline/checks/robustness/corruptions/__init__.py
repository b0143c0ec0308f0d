"""Corruption families for FM16 common corruption: image and tabular inputs."""
