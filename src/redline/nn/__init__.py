"""redline's own small torch networks and the one loop that trains them.

``nets`` holds the architectures (the zoo's CNN and MLP, also the surrogates' building
blocks), ``training`` the shared training loop, ``dp`` differentially private gradient
descent. This package sits just above ``errors`` and ``util``: zoo, checks and the
rest import from it, never the reverse. Its modules import torch at the top, so this
``__init__`` imports none of them and ``import redline`` stays free of torch.
"""
