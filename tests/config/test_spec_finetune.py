"""A spec without a preprocessing block leaves the channels to training: fine-tuning (train -m checkpoint)
takes the checkpoint's pre-processing, derived channel included, and its model_config."""
from pathlib import Path

import pytest
import torch
import yaml

from floodwatch.config import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def no_preprocessing(tmp_path_factory) -> Path:
    """examples/sen1floods11.yaml (derived: diff, model_input_channels: 3) without its preprocessing line,
    over 8 generated Sen1Floods11-layout chips of 32 px; 1 short epoch, so that training it takes seconds."""
    from floodwatch.data.synthetic import write_synthetic_dataset

    d = tmp_path_factory.mktemp("finetune")
    spec = yaml.safe_load((EXAMPLES / "sen1floods11.yaml").read_text())
    assert spec["dataset_config"].pop("preprocessing") == {"derived": "diff"}
    assert spec["model_config"]["model_input_channels"] == 3
    spec["dataset_config"]["data_root"] = str(write_synthetic_dataset(d / "data", chips=8, size=32, seed=3))
    spec["model_config"].update(model_input_height=32, model_input_width=32)
    spec["training_config"].update(epochs=1, batch_size=2, num_workers=0, log_summary_steps=1)
    path = d / "sen1floods11.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def diff_checkpoint(tmp_path_factory) -> Path:
    """An untrained ResNet-10 U-Net over VV, VH, VV-VH (derived: diff), as the example trains."""
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = dict(num_layers=10, in_channels=3, num_classes=2, all_projections=False, use_batch_norm=True)
    prep = Preprocessing(derived="diff", offset=[-12.0, -19.0, 7.0], scale=[0.2, 0.2, 0.2])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "diff.pt", build_model(**cfg), model_config=cfg,
                           preprocessing=prep)


def test_loads_and_validates_as_train_would(no_preprocessing, diff_checkpoint, run_cli):
    spec = load_spec(no_preprocessing)
    assert spec.dataset_config.preprocessing is None and spec.model.model_input_channels == 3
    result = run_cli("spec", "validate", no_preprocessing, "-m", diff_checkpoint)
    assert result.returncode == 0 and "valid" in result.stdout, result.stderr
    result = run_cli("spec", "validate", no_preprocessing)  # from scratch: as train says below
    assert result.returncode == 2
    assert "model_config.model_input_channels: the model takes 3 input channels but the data give 2" in result.stderr


def test_validate_names_the_model_train_would_fine_tune(no_preprocessing, diff_checkpoint, run_cli):
    # the spec says ResNet-18; fine-tuning trains the checkpoint's ResNet-10, as the run's spec.yaml records
    out = run_cli("spec", "validate", no_preprocessing, "-m", diff_checkpoint).stdout.replace("\n", "")
    assert "ResNet-10 U-Net 32x32x3" in out and "from diff.pt" in out and "ResNet-18" not in out, out


def test_fine_tuning_from_a_diff_checkpoint_trains(no_preprocessing, diff_checkpoint, tmp_path, run_cli):
    result = run_cli("train", "-e", no_preprocessing, "-r", tmp_path, "-n", "tuned", "-m", diff_checkpoint)
    assert result.returncode == 0, result.stderr
    from floodwatch.models.checkpoint import read_checkpoint

    best = read_checkpoint(tmp_path / "tuned" / "best.pt")
    assert best["preprocessing"]["derived"] == "diff" and best["model_config"]["in_channels"] == 3


def test_from_scratch_training_still_checks_the_channels(no_preprocessing, tmp_path, run_cli):
    # 3 input channels, 2 from the data without the derived channel: training's own check says so
    result = run_cli("train", "-e", no_preprocessing, "-r", tmp_path, "-n", "scratch")
    assert result.returncode != 0
    assert "model_config.model_input_channels: the model takes 3 input channels but the data give 2" in result.stderr


def test_band_delta_meets_the_checkpoints_derived_channel(no_preprocessing, diff_checkpoint, tmp_path, run_cli):
    """Without a preprocessing block the derived channel comes from the checkpoint, which the spec cannot see:
    the trainer refuses each band's own shift there (the derived channel would not follow it)."""
    spec = yaml.safe_load(no_preprocessing.read_text())
    spec["dataset_config"].update(augment=True, augmentation_config={"brightness_augmentation": {"band_delta": 1.0}})
    path = tmp_path / "band_delta.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("train", "-e", path, "-r", tmp_path, "-n", "tuned", "-m", diff_checkpoint)
    assert result.returncode == 2 and "band_delta: not with the derived channel 'diff'" in result.stderr
    assert not (tmp_path / "tuned" / "best.pt").exists()


def test_a_preprocessing_block_must_make_the_checkpoints_channels(no_preprocessing, diff_checkpoint, tmp_path,
                                                                    run_cli):
    """With a preprocessing block the spec's pre-processing is fitted, not the checkpoint's: VV, VH without the
    derived channel cannot feed the checkpoint's 3-channel model. validate and train say so before any chip."""
    spec = yaml.safe_load(no_preprocessing.read_text())
    spec["dataset_config"]["preprocessing"] = {"derived": "none"}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    message = "dataset_config.preprocessing: the model takes 3 input channels but the data give 2 (VV+VH)"
    result = run_cli("spec", "validate", path, "-m", diff_checkpoint)
    assert result.returncode == 2 and message + " (the model of the checkpoint diff.pt)" in result.stderr
    result = run_cli("train", "-e", path, "-r", tmp_path, "-n", "tuned", "-m", diff_checkpoint)
    assert result.returncode == 2 and message in result.stderr
