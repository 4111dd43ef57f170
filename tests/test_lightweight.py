import pytest
import torch

from trainer.models import count_parameters, create_model
from trainer.models.microexpnet import SIZES


@pytest.mark.parametrize("family", ["dsresnet", "dsvgg"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("classes", [7, 8])
def test_lands_on_not_over_the_microexpnet_budget(family, size, classes):
    budget = count_parameters(create_model(f"microexpnet_{size.lower()}", num_classes=classes))
    params = count_parameters(create_model(f"{family}_{size.lower()}", num_classes=classes))
    assert 0.85 * budget <= params <= budget


@pytest.mark.parametrize("family", ["dsresnet", "dsvgg"])
@pytest.mark.parametrize("input_size", [48, 64, 84])
def test_any_input_size_gives_one_logit_per_class(family, input_size):
    model = create_model(f"{family}_xxs", num_classes=7).eval()
    assert model(torch.zeros(2, 1, input_size, input_size)).shape == (2, 7)


def test_dsresnet_has_no_fully_connected_layer():
    model = create_model("dsresnet_m", num_classes=7)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
