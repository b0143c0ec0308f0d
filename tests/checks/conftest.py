import importlib.util

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Check tests train and attack tiny models: thread start-up and contention cost far
    more than the arithmetic, and one thread keeps timings steady on a shared machine."""
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
