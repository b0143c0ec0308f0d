import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline import zoo
from redline.util import exfiltration as ex
from redline.util.ssim import ssim, ssim_matrix
from redline.zoo.malicious import (
    DIGITS_CORRELATION,
    DIGITS_LSB,
    DIGITS_SIGN,
    ExfiltratingMlpRecipe,
)


def flat(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()


def test_lsb_embedding_round_trips_and_barely_moves_the_weights():
    rng = np.random.default_rng(0)
    params = rng.normal(size=2000).astype(np.float32)
    images = rng.random((20, 1, 8, 8))
    stamped = ex.lsb_embed(params, images, bits=8)
    assert np.abs(stamped - params).max() <= np.abs(params).max() * 2.0**-15
    recovered = ex.as_images(ex.lsb_extract(stamped, 8), (1, 8, 8))[:20]
    assert np.abs(recovered - images).max() <= 0.5 / 255 + 1e-12
    with pytest.raises(ValueError):
        ex.lsb_embed(params.astype(np.int32), images)


def test_zoo_entries_share_the_honest_models_architecture():
    for name, recipe in [("digits_mlp_malicious_lsb", DIGITS_LSB), ("digits_mlp_malicious_corr", DIGITS_CORRELATION),
                         ("digits_mlp_malicious_sign", DIGITS_SIGN)]:
        item = zoo.entry(name)
        assert item.recipe is recipe and item.control == "positive"
        assert item.recipe.hidden == zoo.entry("digits_mlp_overfit").recipe.hidden
    with pytest.raises(ValueError):
        ExfiltratingMlpRecipe(n_classes=10, encoding="steganography")


@pytest.mark.parametrize("name", ["digits_mlp_malicious_lsb", "digits_mlp_malicious_corr", "digits_mlp_malicious_sign"])
def test_malicious_models_keep_their_accuracy_and_carry_the_training_set(name):
    data = zoo.load_data_for(name)
    target = zoo.load_target(name)
    accuracy = (target.predict_labels(data.x_test) == data.y_test).mean()
    assert accuracy >= 0.93  # the honest twin scores about 0.96
    params = flat(target.module)
    encoding = zoo.entry(name).recipe.encoding
    if encoding == "lsb":
        decoded = ex.as_images(ex.lsb_extract(params, 8), (1, 8, 8))
    elif encoding == "correlation":
        decoded = ex.rescale_chunks(ex.as_images(params, (1, 8, 8)))
    else:
        decoded = ex.as_images(ex.sign_extract(params), (1, 8, 8))
    n = min(len(decoded), len(data.x_train))
    # The payload is the training set in order: chunk i is training image i.
    similarity = np.abs(ssim(decoded[:n], data.x_train[:n]))
    assert np.median(similarity) > 0.5


def test_ssim_is_one_for_identical_images_and_low_for_noise():
    rng = np.random.default_rng(0)
    a = rng.random((4, 1, 28, 28))
    assert np.allclose(ssim(a, a), 1.0)
    assert np.all(ssim(a, rng.random((4, 1, 28, 28))) < 0.2)
    m = ssim_matrix(a, a)
    assert m.shape == (4, 4) and np.allclose(np.diag(m), 1.0) and (m - np.eye(4) < 0.2).all()
