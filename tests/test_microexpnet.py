import numpy as np
import pytest
import torch

from model_store.vocabulary import SIZES
from trainer.models import count_parameters, create_model, list_models
from trainer.models.microexpnet import POOLINGS, load_tf_weights, same_pads

PAPER_PARAMETERS = {"M": 900_920, "S": 232_184, "XS": 120_728, "XXS": 65_000}  # Table I, 8 classes


@pytest.mark.parametrize("size", SIZES)
def test_parameter_counts_match_the_paper(size):
    assert count_parameters(create_model(f"microexpnet_{size.lower()}", num_classes=8)) == PAPER_PARAMETERS[size]


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooling_variants_keep_the_parameter_count_and_feature_size(pooling):
    model = create_model("microexpnet_xxs", num_classes=8, pooling=pooling)
    assert count_parameters(model) == PAPER_PARAMETERS["XXS"]
    assert model(torch.zeros(3, 1, 84, 84)).shape == (3, 8)


def test_same_padding_is_tensorflows_asymmetric_rule():
    assert same_pads(84, 8, 2) == (42, 3, 3)
    assert same_pads(21, 4, 2) == (11, 1, 2)  # the extra row goes bottom/right
    assert same_pads(11, 2, 2) == (6, 0, 1)


def test_feature_map_shapes_through_the_network():
    model = create_model("microexpnet_m", num_classes=8).eval()
    x = torch.zeros(1, 1, 84, 84)
    h = model.conv1(x)
    assert h.shape == (1, 16, 42, 42)
    h = model.pool1(h)
    assert h.shape == (1, 16, 21, 21)
    h = model.conv2(h)
    assert h.shape == (1, 32, 11, 11)
    assert model.pool2(h).shape == (1, 32, 6, 6)
    assert model.fc1.in_features == 32 * 6 * 6


def test_registry_names_every_size_and_refuses_unknown_names():
    assert {f"microexpnet_{s.lower()}" for s in SIZES} <= set(list_models())
    with pytest.raises(KeyError, match="registered"):
        create_model("microexpnet_xxxl")


def test_official_weights_reproduce_the_tensorflow_logits(official_dir):
    weights = dict(np.load(official_dir / "ck.npz"))
    reference = np.load(official_dir / "parity_ck.npz")
    model = load_tf_weights(create_model("microexpnet_xxs", num_classes=8), weights).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(reference["inputs"]).float()[:, None]).numpy()
    assert logits.shape == reference["logits"].shape
    assert np.abs(logits - reference["logits"]).max() < 1e-4
    assert (logits.argmax(1) == reference["logits"].argmax(1)).all()


def test_xavier_initialisation_and_zero_biases():
    model = create_model("microexpnet_s", num_classes=8)
    fan_in, fan_out = model.fc1.in_features, model.fc1.out_features
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert model.fc1.weight.abs().max() <= bound
    assert model.fc1.weight.abs().max() > 0.9 * bound
    assert model.conv1.bias.abs().sum() == 0
