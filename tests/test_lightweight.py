import numpy as np
import onnx
import pytest
import torch

from model_store.labels import ordered_subset
from model_store.vocabulary import FAMILIES, SIZES, model_name
from trainer.checkpoint import ModelCheckpoint
from trainer.config import DROPOUT_FAMILIES, STUDENT_INPUT_SIZES, spec_for
from trainer.data import FER2013_CSV_LABELS
from trainer.export import export_checkpoint
from trainer.models import count_parameters, create_model, list_models
from trainer.models.fusion import fold_batchnorm


@pytest.mark.parametrize("family", ["dsresnet", "dsvgg", "dsvgg5"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("classes", [7, 8])
def test_lands_on_not_over_the_microexpnet_budget(family, size, classes):
    budget = count_parameters(create_model(f"microexpnet_{size.lower()}", num_classes=classes))
    params = count_parameters(create_model(f"{family}_{size.lower()}", num_classes=classes))
    assert 0.85 * budget <= params <= budget


@pytest.mark.parametrize("family", ["dsresnet", "dsvgg", "dsvgg5"])
@pytest.mark.parametrize("input_size", [48, 64, 84])
def test_any_input_size_gives_one_logit_per_class(family, input_size):
    model = create_model(f"{family}_xxs", num_classes=7).eval()
    assert model(torch.zeros(2, 1, input_size, input_size)).shape == (2, 7)


def test_dsresnet_has_no_fully_connected_layer():
    model = create_model("dsresnet_m", num_classes=7)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())


def test_an_option_the_architecture_lacks_is_refused_not_ignored():
    # A checkpoint's model_kwargs build the model: dsresnet has no dropout, so a dropout rate must not pass silently.
    with pytest.raises(TypeError, match="dropout"):
        create_model("dsresnet_xxs", num_classes=7, dropout=0.0)


def _with_trained_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and affine parameters away from their identity defaults, as after training."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return model.eval()


@pytest.mark.parametrize("arch", ["dsresnet_xxs", "dsvgg_xxs", "dsvgg5_m", "fer_vgg"])
def test_folding_batch_norm_removes_it_and_keeps_the_function(arch):
    model = _with_trained_statistics(create_model(arch, num_classes=7))
    folded = fold_batchnorm(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_exported_graph_has_no_batch_norm_and_records_the_trained_parameter_count(tmp_path):
    model = _with_trained_statistics(create_model("dsresnet_xxs", num_classes=7))
    checkpoint = ModelCheckpoint(
        arch="dsresnet_xxs",
        model_kwargs={},
        state_dict=model.state_dict(),
        preprocess=spec_for(48),
        labels=list(ordered_subset(FER2013_CSV_LABELS)),
        provenance={"dataset": "generated"},
        metrics={},
    )
    checkpoint.save(tmp_path / "best.pt")
    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    path, draft = export_checkpoint(tmp_path / "best.pt", tmp_path / "export", faces=faces)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    assert draft.parameters == count_parameters(model)
    assert draft.family == "dsresnet" and draft.size == "XXS"


def test_every_family_of_the_vocabulary_is_built_at_every_size_with_a_default_input_size():
    assert set(STUDENT_INPUT_SIZES) == set(FAMILIES) and set(DROPOUT_FAMILIES) <= set(FAMILIES)
    assert {model_name(family, size) for family in FAMILIES for size in SIZES} <= set(list_models())
