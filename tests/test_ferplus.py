"""FER+: the reader (FER+ tools' layout), FER+'s label protocols, starting from a published model, and a recipe run
end to end, on a generated tree in FER+'s layout and, where ../shared is present, on the real one."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED, need
from store_factory import synthetic_faces

from model_store.preprocess import face_input, to_tensor
from trainer.cli import main
from trainer.config import spec_for
from trainer.data import FERPLUS_SPLITS, DatasetError, load_ferplus, open_dataset
from trainer.export import export_checkpoint
from trainer.label_targets import MULTILABEL_SHARE, label_loss, vote_targets
from trainer.models import create_model
from trainer.warm_start import WarmStartError, load_published

REPO = Path(__file__).resolve().parents[1]
SHIPPED_XXS = REPO / "models" / "dsvgg5_xxs" / "1"
# label.csv columns after name and box: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
# unknown, not a face.
VOTES = [
    ([6, 2, 0, 0, 0, 0, 0, 2, 0, 0], "neutral"),
    ([0, 0, 1, 0, 0, 0, 0, 9, 0, 0], "contempt"),
    ([0, 4, 0, 0, 0, 0, 0, 0, 4, 2], None),  # a tie: left out
    ([0, 0, 0, 0, 0, 0, 0, 0, 3, 7], None),  # mostly "not a face": left out
    ([1, 0, 0, 0, 7, 2, 0, 0, 0, 0], "anger"),
    ([0, 0, 3, 0, 0, 0, 5, 0, 2, 0], "fear"),
]


def ferplus_tree(root: Path, copies: int = 1) -> Path:
    """FER+'s layout: FER2013Train|Valid|Test with label.csv and fer<row>.png, and fer2013_labels.csv."""
    root.mkdir(parents=True, exist_ok=True)
    faces = synthetic_faces(len(VOTES) * copies * 3)
    usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    with (root / "fer2013_labels.csv").open("w", newline="") as labels_file:
        original = csv.writer(labels_file)
        original.writerow(["image", "usage", "fer2013_emotion", "jpeg_in_fer2013_folder", "match_correlation"])
        row = 0
        for split, folder in FERPLUS_SPLITS.items():
            (root / folder).mkdir(parents=True)
            with (root / folder / "label.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                for _ in range(copies):
                    for votes, _label in VOTES:
                        name = f"fer{row:07d}.png"
                        cv2.imwrite(str(root / folder / name), faces[row])
                        writer.writerow([name, "(0, 0, 48, 48)", *votes])
                        original.writerow([name, usage[split], ["happy", "sad"][row % 2], "", "1.0"])
                        row += 1
    return root


def test_the_reader_keeps_majority_faces_with_their_votes_in_canonical_order(tmp_path):
    splits = load_ferplus(ferplus_tree(tmp_path))
    assert set(splits) == {"train", "val", "test"}
    test = splits["test"]
    kept = [label for _, label in VOTES if label]
    assert test.classes == ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    assert [test.classes[i] for i in test.labels] == kept
    assert test.votes is not None and test.votes.shape == (len(kept), 8)
    # The contempt face's votes: one surprise, nine contempt, in canonical order.
    np.testing.assert_array_equal(test.votes[1], [0, 0, 9, 0, 0, 0, 0, 1])
    assert test.subset([1]).votes.tolist() == [test.votes[1].tolist()]
    assert len(test.paths) == len(kept) and test.paths[0].endswith("fer0000012.png")


def test_fer2013_labels_on_ferplus_pixels(tmp_path):
    splits = open_dataset(f"ferplus-fer2013:{ferplus_tree(tmp_path)}")
    assert splits["train"].classes == ("happiness", "sadness") and len(splits["train"]) == len(VOTES)
    assert splits["train"].votes is None


def test_a_tree_that_is_not_ferplus_is_refused_clearly(tmp_path):
    with pytest.raises(DatasetError, match="missing FER2013Train"):
        load_ferplus(tmp_path)
    tree = ferplus_tree(tmp_path / "bad")
    (tree / "FER2013Valid" / "label.csv").write_text("fer0.png,box,1,2,three\n")
    with pytest.raises(DatasetError, match="not numbers"):
        load_ferplus(tree)


def test_the_shared_ferplus_folder_reads_with_its_original_pixels():
    splits = open_dataset(f"ferplus:{need(SHARED / 'datasets' / 'ferplus')}")
    assert {name: len(split) for name, split in splits.items()} == {"train": 26940, "val": 3396, "test": 3371}
    # Original FER2013 pixels (mean about 129), not the contrast-stretched JPEGs (about 131, std 78).
    assert 128 < splits["train"].images.mean() < 130.5 and splits["train"].images.std() < 66
    assert np.bincount(splits["test"].labels, minlength=8)[2] > 0, "contempt is one of the classes"


def test_label_modes_give_their_targets_and_losses():
    votes = np.array([[6, 0, 4, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 10, 0, 0]], dtype=np.float32)
    logits = torch.randn(2, 8)
    labels = torch.tensor([0, 5])
    generator = torch.Generator().manual_seed(0)
    assert vote_targets(votes, "majority") is None
    distribution = vote_targets(votes, "crossentropy")
    assert torch.allclose(distribution[0], torch.tensor([0.6, 0, 0.4, 0, 0, 0, 0, 0]))
    expected = -(distribution * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(label_loss(logits, labels, distribution, "crossentropy", generator), expected)
    acceptable = vote_targets(votes, "multilabel")
    assert acceptable[0].tolist() == [1, 0, 1, 0, 0, 0, 0, 0] and MULTILABEL_SHARE <= 0.4
    best = torch.stack([F.log_softmax(logits, 1)[0, [0, 2]].max(), F.log_softmax(logits, 1)[1, 5]])
    assert torch.allclose(label_loss(logits, labels, acceptable, "multilabel", generator), -best.mean())
    # Probabilistic label drawing: over many draws, each class in proportion to its votes.
    many = torch.tensor(votes[[0]]).repeat(4000, 1) / 10
    drawn = torch.multinomial(many, 1, generator=torch.Generator().manual_seed(1)).squeeze(1)
    assert abs((drawn == 2).float().mean().item() - 0.4) < 0.03
    with pytest.raises(ValueError, match="needs each face's votes"):
        vote_targets(None, "probability")


def _inputs(count: int = 64) -> torch.Tensor:
    spec = spec_for(48)
    return torch.from_numpy(to_tensor(np.stack([face_input(f, spec) for f in synthetic_faces(count)]), spec))


def test_a_published_model_starts_an_eight_class_model_with_its_own_outputs():
    labels = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    model = create_model("dsvgg5_xxs", num_classes=8, dropout=0.0)
    identity = load_published(model, SHIPPED_XXS, labels, _inputs())  # raises unless it reproduces the graph
    assert identity.startswith("dsvgg5_xxs v1 sha256:")
    # The batch norms were set from the faces' statistics: training mode computes what eval mode does.
    faces = _inputs()
    with torch.no_grad():
        evaluated = model.eval()(faces)
        trained = model.train()(faces)
    assert torch.allclose(evaluated, trained, atol=1e-3)


def test_a_published_model_of_another_architecture_is_refused():
    model = create_model("dsvgg_xs", num_classes=8)
    with pytest.raises(WarmStartError, match=r"is .* there"):
        load_published(model, SHIPPED_XXS, ("neutral",) * 8, _inputs())


def test_a_recipe_trains_from_a_published_model_on_ferplus_and_exports_eight_classes(tmp_path):
    tree = ferplus_tree(tmp_path / "ferplus", copies=4)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f'description = "a tiny FER+ fine-tune"\ncommand = "student"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[args]\ndata = "ferplus:{tree}"\nfamily = "dsvgg5"\nsize = "xxs"\ndropout = 0.0\n'
        f'init_from = "{SHIPPED_XXS}"\nlabel_mode = "probability"\nepochs = 1\nbatch_size = 8\nquiet = true\n'
    )
    assert main(["run", str(recipe), "--seed", "3"]) == 0
    run = tmp_path / "run-seed3"
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "tiny" and config["seed"] == 3 and config["label_mode"] == "probability"
    assert json.loads((run / "recipe.json").read_text())["recipe"]["args"]["family"] == "dsvgg5"
    _, draft = export_checkpoint(run / "best.pt", tmp_path / "export")
    assert len(draft.labels) == 8 and "contempt" in draft.labels
    # Published beside the FER2013 model of the same architecture, under a family that names its data.
    assert (draft.family, draft.architecture) == ("dsvgg5-ferplus", "dsvgg5_xxs")
    assert draft.provenance.pixels.startswith("FER2013's original pixels")
    assert "probability protocol" in draft.provenance.recipe and "started from" in draft.provenance.recipe


def test_an_unknown_recipe_names_the_known_ones(capsys):
    assert main(["run", "no-such-recipe"]) == 2
    assert "ferplus-finetune-xxs" in capsys.readouterr().err
