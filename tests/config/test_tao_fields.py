"""A TAO UNet spec as TAO writes it: every TAO field is mapped or dropped with its reason, never rejected as a typo."""
from __future__ import annotations

from pathlib import Path

import pytest

from floodwatch.config import convert_tao_spec, load_spec, spec_from_dict
from floodwatch.errors import SpecError
from floodwatch.tao import tao_to_dict

_DATA = 'dataset_config {{ data_root: "d" {extra} }}\n'


def _dropped(text: str) -> tuple[dict, list[str]]:
    ignored: list[str] = []
    return tao_to_dict(text, ignored=ignored), ignored


def test_tao_only_fields_are_dropped_with_a_reason_not_refused_as_typos():
    text = ('model_config { pretrained_model_file: "/workspace/resnet_18.hdf5" freeze_bn: false use_pooling: false }\n'
            'training_config { use_xla: false warmup_steps: 100 weight_decay: 1e-4 max_steps: 5 }\n'
            + _DATA.format(extra='dataloader: "default" preprocess: "min_max_-1_1"') + 'evaluation_config { }\n')
    d, ignored = _dropped(text)
    spec_from_dict(d)  # validates: nothing TAO writes is an "unknown field"
    fields = [entry.split(" (")[0] for entry in ignored]
    assert fields == ["model_config.pretrained_model_file", "model_config.freeze_bn", "model_config.use_pooling",
                      "training_config.use_xla", "training_config.warmup_steps", "training_config.weight_decay",
                      "training_config.max_steps", "dataset_config.dataloader", "dataset_config.preprocess",
                      "evaluation_config"]  # in the file's order, each with its reason
    assert all(entry.endswith(")") and " (" in entry for entry in ignored)
    assert "give train a floodwatch or torchvision pretrained model" in ignored[0]


def test_tao_fields_with_another_name_here_are_moved():
    text = ('model_config { activation: "softmax" }\n'
            'training_config { num_epochs: 7 use_amp: false }\n'
            'dataset_config {\n'
            '  train_data_sources { data_source { image_path: "img/train" masks_path: "msk/train" } }\n'
            '  val_data_sources { data_source { image_path: "img/val" masks_path: "msk/val" } }\n'
            '}\n'
            'data_class_config {\n'  # TAO's Experiment also takes it at the top level
            '  target_classes { name: "dry" mapping_class: "dry" label_id: 0 }\n'
            '  target_classes { name: "wet" mapping_class: "wet" label_id: 255 }\n'
            '}\n')
    d, ignored = _dropped(text)
    spec = spec_from_dict(d)
    assert ignored == []
    ds, tc = spec.dataset_config, spec.training_config
    assert (ds.train_images_path, ds.train_masks_path, ds.val_images_path, ds.val_masks_path) == \
        ("img/train", "msk/train", "img/val", "msk/val")
    assert [c.label_id for c in ds.data_class_config.target_classes] == [0, 255]
    assert tc.epochs == 7 and tc.precision == "float32" and tc.activation == "softmax"
    d, _ = _dropped(_DATA.format(extra="") + "training_config { use_amp: true }")
    assert spec_from_dict(d).training_config.precision == "auto"  # float16 AMP on CUDA, as TAO's


def test_several_tao_data_sources_are_refused_by_name():
    text = ('dataset_config { train_data_sources { data_source { image_path: "a" masks_path: "b" }\n'
            '  data_source { image_path: "c" masks_path: "d" } } }\n')
    with pytest.raises(SpecError, match=r"dataset_config.train_data_sources: give one data_source .*got 2"):
        tao_to_dict(text)


def test_exponential_decay_steps_are_not_read_as_epochs():
    # TAO's decay_steps counts optimiser steps: 1000 of them as StepLR epochs never decayed at all
    d, ignored = _dropped(_DATA.format(extra="") + 'training_config { lr_scheduler { exponential_decay {\n'
                          '  decay_rate: 0.5 decay_steps: 1000 } } }')
    s = spec_from_dict(d).training_config.lr_scheduler
    assert (s.type, s.gamma, s.step_size) == ("step", 0.5, 10)
    assert ignored and ignored[0].startswith("training_config.lr_scheduler.exponential_decay.decay_steps (TAO counts")
    _, ignored = _dropped('training_config { lr_scheduler { cosine_decay { alpha: 0.1 decay_steps: 100 } } }')
    assert ignored == ["training_config.lr_scheduler.cosine_decay.decay_steps (the cosine runs over all "
                       "training_config.epochs)"]


def test_a_setting_given_twice_is_named_with_its_lines(tmp_path):
    spec = tmp_path / "t.txt"
    spec.write_text(_DATA.format(extra="") + "training_config {\n  epochs: 3\n  epochs: 5\n}\n")
    with pytest.raises(SpecError, match=r"t.txt: training_config.epochs: given 2 times \(lines 3, 4\); it takes one "
                                        r"value$"):
        load_spec(spec)
    # a repeated list field stays a list
    d, _ = _dropped(_DATA.format(extra="") + "training_config { weight: 1.0 weight: 3.0 }")
    assert spec_from_dict(d).training_config.weight == [1.0, 3.0]


def test_typos_get_a_suggestion_and_tao_specs_their_line(tmp_path):
    spec = tmp_path / "t.txt"
    spec.write_text(_DATA.format(extra="") + "training_config {\n  learnig_rate: 0.1\n}\n"
                    'semi_supervised { unlabelled { path: "u" } confidance: 0.8 }\n')
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert err.value.lines == ["t.txt: training_config.learnig_rate: unknown field; did you mean learning_rate? "
                               "(line 3)",
                               "t.txt: semi_supervised.confidance: unknown field; did you mean confidence? (line 5)"]
    with pytest.raises(SpecError, match=r"training_config.zzz: unknown field$"):  # nothing close: no guess
        spec_from_dict({"dataset_config": {"data_root": "d"}, "training_config": {"zzz": 1}})


def test_converted_paths_point_where_the_tao_spec_pointed(tmp_path):
    (tmp_path / "project" / "specs").mkdir(parents=True)
    tao = tmp_path / "project" / "specs" / "unet.txt"
    tao.write_text('dataset_config {\n'
                   '  train_data_sources { data_source { image_path: "../data/images/train" '
                   'masks_path: "../data/masks/train" } }\n'
                   '  val_images_path: "../data/images/val"\n  val_masks_path: "../data/masks/val"\n}\n')
    out = tmp_path / "elsewhere" / "deep" / "spec.yaml"
    out.parent.mkdir(parents=True)
    convert_tao_spec(tao, out)
    ds = load_spec(out).dataset_config
    data = (tmp_path / "project" / "data").resolve()
    assert Path(ds.train_images_path) == data / "images" / "train"
    assert Path(ds.val_masks_path) == data / "masks" / "val"
    assert "../../project/data/images/train" in out.read_text()


def test_validate_lists_each_dropped_field_on_its_own_line(tmp_path, capsys):
    from floodwatch.cli.main import main
    from floodwatch.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", chips=4, size=32)
    spec = tmp_path / "t.txt"
    spec.write_text('dataset_config {\n  data_root: "data"\n}\nmodel_config {\n  dropout_rate: 0.3\n'
                    '  enable_qat: true\n}\n')
    with pytest.raises(SystemExit) as exc:
        main(["spec", "validate", str(spec)])
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    assert "not used by floodwatch, dropped: model_config.dropout_rate (this U-Net has no dropout layers)\n" in out
    assert "\n  model_config.enable_qat (no quantisation-aware training" in out


def test_a_synthetic_source_written_on_first_use_is_not_a_missing_path(tmp_path):
    # examples/all_events_synth.yaml: train writes the folder, spec validate said it "does not exist"
    from floodwatch.config import spec_path_problems

    spec = tmp_path / "s.yaml"
    spec.write_text("dataset_config:\n  sources:\n"
                    "    - {path: synth, format: synthetic, options: {chips: 4, size: 32, seed: 7}}\n"
                    "    - {path: bare, format: synthetic}\n")
    assert spec_path_problems(load_spec(spec)) == [
        f"dataset_config.sources[1].path: {tmp_path / 'bare'} does not exist"]  # no options: nothing is written
