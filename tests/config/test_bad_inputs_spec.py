"""Bad input to `floodwatch spec ...`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import BINARY, Case, binary_file, check, params, plain_file
from tests.data import fakes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_spec")
    f = {"file": plain_file(d / "a_file"), "binary_spec": binary_file(d / "spec.yaml"),
         "tao": EXAMPLES / "tao_unet_resnet18.txt", "missing_folder": d / "missing_folder",
         "data": d / "data", "split_folder": d / "data" / "split.csv"}
    f["split_folder"].mkdir(parents=True)
    # a floodwatch spec given to `spec convert`: by suffix, and by content under TAO's .txt suffix
    f["yaml_spec"] = EXAMPLES / "etci_northal.yaml"
    f["yaml_as_txt"] = d / "yaml_spec.txt"
    f["yaml_as_txt"].write_text("dataset_config:\n  data_root: data\nmodel_config: {num_layers: 18}\n")
    for name, body in {"no_data": "{data_root: missing_folder}",
                       "data_is_file": "{data_root: a_file}",
                       "split_is_folder": "{data_root: data, split: data/split.csv}",
                       "tao_path_missing": "{train_images_path: data, train_masks_path: data, "
                                           "val_images_path: data, val_masks_path: missing_folder}",
                       "source_missing": "{sources: [{path: data}, {path: missing_folder}]}",
                       # NaN and infinity pass every >= / > bound: refused as values
                       "nan_fraction": "{data_root: s1, format: sen1floods11, split: {fractions: [.nan, 0.5, 0.5]}}",
                       "inf_delta": "{data_root: s1, format: sen1floods11, augment: true, "
                                    "augmentation_config: {brightness_augmentation: {delta: .inf}}}",
                       # one pixel value for two classes: the first listed won silently
                       "dup_label": "{data_root: s1, format: sen1floods11, data_class_config: {target_classes: "
                                    "[{name: dry, mapping_class: notflood, label_id: 0}, "
                                    "{name: wet, mapping_class: flood, label_id: 0}]}}"}.items():
        f[name] = d / f"{name}.yaml"
        f[name].write_text(f"dataset_config: {body}\n")
    labelled = "dataset_config: {data_root: s1, format: sen1floods11}\n"
    f["good"] = d / "good.yaml"
    f["good"].write_text(labelled)
    # a split CSV of other chips: training failed naming neither the CSV nor its field, validate said "valid"
    (d / "other_chips.csv").write_text("id,split\nnot_a_chip,train\n")
    f["csv_of_other_chips"] = d / "csv_of_other_chips.yaml"
    f["csv_of_other_chips"].write_text("dataset_config: {data_root: s1, format: sen1floods11, split: other_chips.csv}\n")
    # -m files train refuses: no torch file, and tensors that are no ResNet's
    f["garbage"] = plain_file(d / "garbage.pt")
    f["not_resnet"] = d / "not_resnet.pt"
    import torch

    torch.save({"fc.weight": torch.zeros(2, 2)}, f["not_resnet"])
    for name, body in {"huge_lr": "training_config: {learning_rate: 1.0e+9}",
                       "negative_seed": "training_config: {random_seed: -5}",
                       "inf_weight": "training_config: {weight: [.inf, 1.0]}",  # NaN/inf pass >= and > bounds
                       # the model takes the labelled chips' VV, VH: OMBRIA has VV only, and no chip has HH
                       "one_band_unlabelled": "semi_supervised: {unlabelled: [{path: ombria, format: ombria}]}",
                       "otsu_hh": "semi_supervised: {unlabelled: [s1], otsu_agreement: HH}",
                       # no preprocessing block: from scratch the model is model_config's all the same
                       "three_channels": "model_config: {model_input_channels: 3}",
                       # YAML's true/yes/on are booleans: they passed as the number 1
                       "bool_epochs": "training_config: {epochs: true}",
                       "bool_learning_rate": "training_config: {learning_rate: yes}",
                       # widths train refuses after reading every chip: validate said "valid"
                       "widths_unknown": "model_config: {num_layers: 10, widths: {encoder.nope: 8}}",
                       "widths_zero": "model_config: {num_layers: 10, widths: {decoder.0.conv1: 0}}"}.items():
        f[name] = d / f"{name}.yaml"
        f[name].write_text(labelled + body + "\n")
    # each band shifted on its own: a derived channel or a second date would not follow
    augmented = "dataset_config: {data_root: s1, format: sen1floods11, augment: true, %s" \
                "augmentation_config: {brightness_augmentation: {band_delta: 1.0}}}\nmodel_config: {%s}\n"
    f["band_delta_diff"] = d / "band_delta_diff.yaml"
    f["band_delta_diff"].write_text(augmented % ("preprocessing: {derived: diff}, ", "model_input_channels: 3"))
    f["band_delta_bitemporal"] = d / "band_delta_bitemporal.yaml"
    f["band_delta_bitemporal"].write_text(augmented % ("", "temporal: bitemporal"))
    f["bool_probability"] = d / "bool_probability.yaml"
    f["bool_probability"].write_text("dataset_config: {data_root: s1, format: sen1floods11, augment: true, "
                                     "augmentation_config: {spatial_augmentation: {hflip_probability: on}}}\n")
    f["bad_second_source"] = d / "bad_second_source.yaml"  # the first opens; the second is a folder of no data set
    f["bad_second_source"].write_text("dataset_config: {sources: [{path: s1, format: sen1floods11}, {path: data}]}\n")
    fakes.sen1floods11(d / "s1")
    fakes.ombria(d / "ombria")
    f["tao_copy"] = d / "tao_copy.txt"
    f["tao_copy"].write_bytes(f["tao"].read_bytes())
    f["tao_typo"] = d / "tao_typo.txt"
    f["tao_typo"].write_text("model_config {\n  num_layerz: 18\n}\n")
    f["victim"] = binary_file(d / "victim.pt")  # a checkpoint, as far as a refused run may know
    return f


CASES = [
    Case("binary-spec", "spec validate {binary_spec}", ("{binary_spec}", "not UTF-8")),
    Case("binary-spec-convert", "spec convert {binary_spec} -o {out}.yaml", ("{binary_spec}", "not UTF-8"),
         absent=("{out}.yaml",)),
    Case("data-root-missing", "spec validate {no_data}", ("dataset_config.data_root", "{missing_folder}")),
    Case("data-root-is-file", "spec validate {data_is_file}", ("dataset_config.data_root", "{file}", "not a folder")),
    Case("split-csv-is-folder", "spec validate {split_is_folder}", ("dataset_config.split.csv", "not a file")),
    Case("tao-path-missing", "spec validate {tao_path_missing}", ("dataset_config.val_masks_path", "{missing_folder}")),
    Case("source-path-missing", "spec validate {source_missing}", ("dataset_config.sources[1].path", "{missing_folder}")),
    Case("convert-out-under-file", "spec convert {tao} -o {file}/s.yaml", ("{file} is a file",)),
    Case("spec-is-folder", "spec validate {data}", ("{data}", "is a folder, not a spec file")),
    Case("convert-folder", "spec convert {data} -o {out}.yaml", ("{data}", "is a folder, not a spec file"),
         absent=("{out}.yaml",)),
    Case("convert-yaml-spec", "spec convert {yaml_spec} -o {out}.yaml",
         ("{yaml_spec}", "already a floodwatch spec", "TAO's protobuf text"), forbid=("Traceback", "line "),
         absent=("{out}.yaml",)),
    Case("convert-yaml-as-txt", "spec convert {yaml_as_txt} -o {out}.yaml",
         ("{yaml_as_txt}", "already a floodwatch spec"), absent=("{out}.yaml",)),
    Case("unlabelled-bands", "spec validate {one_band_unlabelled}",
         ("one_band_unlabelled.yaml: semi_supervised.unlabelled[0]", "VV, VH")),
    Case("otsu-band-missing", "spec validate {otsu_hh}", ("otsu_hh.yaml: semi_supervised.otsu_agreement", "HH")),
    Case("channels-from-scratch", "spec validate {three_channels}",
         ("three_channels.yaml: model_config.model_input_channels", "takes 3", "give 2")),
    Case("model-missing", "spec validate {three_channels} -m {missing_folder}/best.pt",
         ("{missing_folder}/best.pt: weights file not found",)),
    Case("model-is-folder", "spec validate {three_channels} -m {data}", ("{data}: is a folder, not a weights file",)),
    Case("split-csv-of-other-chips", "spec validate {csv_of_other_chips}",
         ("dataset_config.split.csv", "other_chips.csv", "not_a_chip")),
    # train refuses these: validate said "valid"
    Case("model-not-torch", "spec validate {good} -m {garbage}", ("{garbage}", "not a torch file")),
    Case("model-not-resnet", "spec validate {good} -m {not_resnet}", ("{not_resnet}", "conv1.weight")),
    Case("convert-onto-input", "spec convert {tao_copy} -o {tao_copy}", ("-o {tao_copy}",), absent=()),
    # YAML written over a checkpoint (exit 0) before the name had to say YAML
    Case("convert-over-checkpoint", "spec convert {tao} -o {victim}", ("-o {victim}", ".yaml or .yml"),
         absent=()),
    Case("convert-typo-named-first", "spec convert {tao_typo} -o {out}.yaml",
         ("tao_typo.txt: model_config.num_layerz", "spec validate {tao_typo}"), absent=("{out}.yaml",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
    assert files["victim"].read_bytes() == BINARY


@pytest.mark.parametrize("name, field", [("huge_lr", "training_config.learning_rate: 1e+09 is far too large"),
                                         ("negative_seed", "training_config.random_seed: "),
                                         ("nan_fraction", "dataset_config.split.fractions[0]: Input should be "
                                                          "a finite number"),
                                         ("inf_weight", "training_config.weight[0]: Input should be a finite"),
                                         ("dup_label", "dataset_config.data_class_config.target_classes: "
                                                       "label_id 0 is given to both 'notflood' and "
                                                       "'flood'"),
                                         ("inf_delta", "dataset_config.augmentation_config.brightness_augmentation."
                                                       "delta: Input should be a finite number"),
                                         ("bad_second_source", "dataset_config.sources[1].path: "),
                                         ("band_delta_diff", "dataset_config.augmentation_config.brightness_"
                                                             "augmentation.band_delta: not with the derived channel"),
                                         ("band_delta_bitemporal", "dataset_config.augmentation_config.brightness_"
                                                                   "augmentation.band_delta: not with a bi-temporal"),
                                         ("bool_epochs", "training_config.epochs: true is a boolean, not a number"),
                                         ("bool_learning_rate", "training_config.learning_rate: true is a boolean"),
                                         ("bool_probability", "dataset_config.augmentation_config.spatial_"
                                                              "augmentation.hflip_probability: true is a boolean"),
                                         ("widths_unknown", "model_config.widths: encoder.nope is not a prunable"),
                                         ("widths_zero", "model_config.widths.decoder.0.conv1: must be >= 1")])
def test_validate_refuses_values_training_cannot_use(files, run_cli, name, field):
    # field errors: one line each, then validate's note (so not a table row: those are one line in all)
    result = run_cli("spec", "validate", files[name])
    assert result.returncode == 2 and f"error: {name}.yaml: {field}" in result.stderr.splitlines()[0]


def test_convert_leaves_its_input_alone(files, run_cli):
    for out in (files["tao_copy"], files["tao_copy"].parent / "." / files["tao_copy"].name):
        assert run_cli("spec", "convert", files["tao_copy"], "-o", out).returncode == 2
    assert files["tao_copy"].read_bytes() == files["tao"].read_bytes()
