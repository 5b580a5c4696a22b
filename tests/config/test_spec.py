"""Spec validation: every error names its field; TAO's protobuf-text spec parses and converts."""
import re
from pathlib import Path

import pytest
import yaml

from floodwatch.config import convert_tao_spec, load_spec, save_spec, spec_from_dict
from floodwatch.data.synthetic import write_synthetic_dataset
from floodwatch.errors import SpecError
from floodwatch.tao import parse_text_proto, tao_to_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MINIMAL = {"dataset_config": {"data_root": "data"}}


def _with(section: str, **fields) -> dict:
    d = {k: dict(v) for k, v in MINIMAL.items()}
    d.setdefault(section, {}).update(fields)
    return d


@pytest.mark.parametrize("section, fields, message", [
    ("training_config", {"learning_rate": 0}, "spec.yaml: training_config.learning_rate: Input should be greater than 0"),
    ("training_config", {"learnig_rate": 0.1}, "training_config.learnig_rate: unknown field; did you mean learning_rate?"),
    ("model_config", {"num_layers": 19}, "model_config.num_layers: Input should be 10, 18, 34 or 50"),
    ("model_config", {"model_input_height": 100}, "model_config.model_input_height: must be a multiple of 16"),
    ("training_config", {"loss": "hinge"}, "training_config.loss: Input should be"),
    ("training_config", {"regularizer": {"type": "L3"}}, "training_config.regularizer.type"),
    ("training_config", {"weight": [1.0]}, "training_config.weight: class weights"),
    ("dataset_config", {"split": {"method": "random", "fractions": [0.5, 0.5, 0.5]}},
     "dataset_config.split.fractions: train/val/test fractions"),
    ("dataset_config", {"augmentation_config": {"spatial_augmentation": {"hflip_probability": 2}}},
     "dataset_config.augmentation_config.spatial_augmentation.hflip_probability"),
    ("dataset_config", {"train_images_path": "x"}, "dataset_config: give either data_root or TAO's"),
    ("model_config", {"training_precision": {"backend_floatx": "INVALID"}},
     "model_config.training_precision.backend_floatx: INVALID is TAO's unset value"),
])
def test_errors_name_the_field(section, fields, message):
    with pytest.raises(SpecError) as err:
        spec_from_dict(_with(section, **fields), source="spec.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_section_is_rejected_by_name():
    with pytest.raises(SpecError, match="trainng_config: unknown field; did you mean training_config"):
        spec_from_dict({**MINIMAL, "trainng_config": {}})


def test_shorthands_and_relative_paths(tmp_path):
    p = tmp_path / "sub" / "spec.yaml"
    p.parent.mkdir()
    p.write_text(yaml.safe_dump({"dataset_config": {"data_root": "../data", "split": "splits.csv"},
                                 "training_config": {"lr_scheduler": "cosine"}}))
    spec = load_spec(p)
    assert spec.dataset_config.data_root == str((tmp_path / "data").resolve())
    assert spec.dataset_config.split.csv == str((tmp_path / "sub" / "splits.csv").resolve())
    assert spec.training_config.lr_scheduler.type == "cosine"
    assert spec.dataset_config.augmentation() is None  # augment defaults to false


def test_augment_without_config_uses_tao_defaults():
    spec = spec_from_dict(_with("dataset_config", augment=True))
    aug = spec.dataset_config.augmentation()
    assert aug["spatial_augmentation"]["hflip_probability"] == 0.5
    from floodwatch.augment import parse_config

    parse_config(aug)  # the augmenter accepts it


def test_save_spec_round_trip_keeps_paths_working(tmp_path):
    spec = load_spec(EXAMPLES / "etci_northal.yaml")
    out = tmp_path / "elsewhere" / "copy.yaml"
    save_spec(spec, out)
    again = load_spec(out)
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")) + ["tao_unet_resnet18.txt"])
def test_examples_are_valid(name):
    load_spec(EXAMPLES / name)


@pytest.mark.parametrize("floatx, precision, expected", [
    (None, None, "auto"),            # neither given: floodwatch's default
    ("FLOAT32", None, "float32"),    # TAO's float32 turns float16 AMP off on CUDA
    ("FLOAT16", None, "auto"),       # TAO's mixed precision: float16 on CUDA
    ("FLOAT32", "bfloat16", "bfloat16"),  # floodwatch's own field wins (saved specs carry both)
    ("FLOAT16", "float32", "float32"),
])
def test_tao_training_precision_sets_the_precision(floatx, precision, expected):
    d = {k: dict(v) for k, v in MINIMAL.items()}
    if floatx:
        d["model_config"] = {"training_precision": {"backend_floatx": floatx}}
    if precision:
        d["training_config"] = {"precision": precision}
    spec = spec_from_dict(d)
    assert spec.training_config.precision == expected
    assert spec_from_dict(spec.to_dict()).training_config.precision == expected  # a checkpoint's spec reloads


def test_text_proto_parser():
    text = '''
    # comment
    a: 1  b: -2.5e-3 c: "x\\"y" d: true e: FLOAT32
    m { n: 1 n: 2 inner < k: 'v' > }
    target_classes { name: "only" }
    r: [1, 2, 3]
    '''
    got = parse_text_proto(text)
    assert got == {"a": 1, "b": -2.5e-3, "c": 'x"y', "d": True, "e": "FLOAT32",
                   "m": {"n": [1, 2], "inner": {"k": "v"}}, "target_classes": [{"name": "only"}], "r": [1, 2, 3]}


@pytest.mark.parametrize("text, message", [
    ("model_config { num_layers: 18", "line 1: missing '}'"),
    ("model_config { num_layers: : }", "line 1: expected a value"),
    ("model_config { num_layers: 18 } }", "expected a field name"),
    ("a: 1\nb: @", "line 2: cannot parse"),
])
def test_text_proto_errors_give_the_line(text, message):
    with pytest.raises(SpecError, match=message):
        parse_text_proto(text, source="t.txt")


def test_tao_example_converts(tmp_path):
    tao = EXAMPLES / "tao_unet_resnet18.txt"
    d = tao_to_dict(tao.read_text())
    assert d["training_config"]["random_seed"] == 42  # TAO's top-level seed moves into training_config
    out = tmp_path / "spec.yaml"
    convert_tao_spec(tao, out)
    spec = load_spec(out)
    assert spec.model.num_layers == 18 and spec.model.all_projections and not spec.model.use_batch_norm
    assert spec.training_config.loss == "cross_dice_sum"
    assert spec.training_config.precision == "float32"  # backend_floatx: FLOAT32
    assert spec.training_config.optimizer.adam.beta1 == pytest.approx(0.9)
    assert spec.training_config.regularizer.type == "L2" and spec.training_config.regularizer.weight == 2e-5
    assert [c.label_id for c in spec.dataset_config.data_class_config.target_classes] == [0, 255, 127]
    # the converted spec points at the same folders as the TAO file
    assert spec.dataset_config.train_images_path == str((EXAMPLES / "data/images/train").resolve())
    assert spec.to_dict() == load_spec(tao).to_dict()


def test_tao_scheduler_mapping():
    d = tao_to_dict('training_config { lr_scheduler { cosine_decay { alpha: 0.1 decay_steps: 100 } } }\n'
                    'dataset_config { data_root: "x" }')
    spec = spec_from_dict(d)
    assert spec.training_config.lr_scheduler.type == "cosine"
    assert spec.training_config.lr_scheduler.min_lr_ratio == pytest.approx(0.1)


def _cli(capsys, *args):
    from floodwatch.cli.main import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_validate_and_convert(tmp_path, capsys):
    import shutil

    spec = shutil.copy(EXAMPLES / "synthetic.yaml", tmp_path / "synthetic.yaml")
    code, _, err = _cli(capsys, "spec", "validate", str(spec))  # its data folder is not there yet
    assert code == 2 and "dataset_config.data_root" in err and "does not exist" in err
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    code, _, err = _cli(capsys, "spec", "validate", str(spec))  # there, but empty: training could not read it
    assert code == 2 and "synthetic.yaml: dataset_config.data_root: " in err
    write_synthetic_dataset(tmp_path / "data" / "synthetic", chips=4, size=32)
    code, out, _ = _cli(capsys, "spec", "validate", str(spec))
    assert code == 0 and "valid" in out
    target = tmp_path / "c.yaml"
    code, _, _ = _cli(capsys, "spec", "convert", str(EXAMPLES / "tao_unet_resnet18.txt"), "-o", str(target))
    assert code == 0 and target.is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_config: {data_root: x}\ntraining_config: {epochs: 0}\n")
    code, _, err = _cli(capsys, "spec", "validate", str(bad))
    assert code == 2 and "training_config.epochs" in err
    assert err.strip().splitlines()[1:] == ["fix these first; data paths and channel counts are checked after"]
    assert "Traceback" not in err
    code, _, err = _cli(capsys, "spec", "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "not found" in err


def test_validate_says_which_tao_fields_are_dropped(tmp_path, capsys):
    # convert listed them; validate called such a spec valid without a word
    write_synthetic_dataset(tmp_path / "data", chips=4, size=32)
    spec = tmp_path / "t.txt"
    spec.write_text('dataset_config {\n  data_root: "data"\n}\nmodel_config {\n  dropout_rate: 0.3\n}\n')
    code, out, err = _cli(capsys, "spec", "validate", str(spec))
    assert code == 0 and "not used by floodwatch, dropped: model_config.dropout_rate" in out, err


def test_validate_checks_channels_as_train_would(tmp_path, capsys, tiny_checkpoint):
    """From scratch, model_config's channels meet the data's bands even in a spec with no preprocessing block;
    with -m, the checkpoint's model takes model_config's place (as in `train -e SPEC -m CKPT`)."""
    write_synthetic_dataset(tmp_path / "data", chips=4, size=32)
    spec = tmp_path / "s.yaml"
    spec.write_text("dataset_config: {data_root: data}\nmodel_config: {model_input_channels: 3}\n")
    code, _, err = _cli(capsys, "spec", "validate", str(spec))
    assert code == 2 and "model_config.model_input_channels: the model takes 3 input channels but the data give 2" in err
    code, out, err = _cli(capsys, "spec", "validate", str(spec), "-m", str(tiny_checkpoint))
    assert code == 0 and "valid" in out, err


@pytest.mark.parametrize("dataset, message", [
    ({"data_root": "d", "format": "etcii"},
     "dataset_config.format: 'etcii' is not a known format (did you mean etci? known: sen1floods11, etci,"),
    ({"sources": [{"path": "a", "format": "etci2021"}, {"path": "b", "format": "etcii"}]},
     "dataset_config.sources[1].format: 'etcii' is not a known format"),
    ({"data_root": "d", "format": "chips"}, "dataset_config.format: 'chips' is not a known format"),  # unlabelled only
])
def test_unknown_formats_are_named_with_their_field(dataset, message):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"dataset_config": dataset}, source="spec.yaml")
    assert message in str(err.value)


@pytest.mark.parametrize("fmt", ["etci", "ETCI2021", "images-masks", "stac-overflow", "s1floods11", "synthetic"])
def test_formats_and_aliases_open_dataset_takes_are_valid(fmt):
    spec_from_dict({"dataset_config": {"sources": [{"path": "a", "format": fmt}], "format": fmt,
                                       "data_root": None}})


# only where the spec states the pre-processing (a preprocessing block, even empty): without one, fine-tuning
# (train -m checkpoint) takes the checkpoint's, derived channel included, so the spec cannot know the channels
@pytest.mark.parametrize("dataset, model, message", [
    ({"format": "etci", "preprocessing": {}}, {"model_input_channels": 5},
     "model_config.model_input_channels: the model takes 5 input channels but the data give 2 "
     "(VV+VH from format etci)"),
    ({"format": "etci", "preprocessing": {"derived": "diff"}}, {"model_input_channels": 2}, "give 3 (VV+VH"),
    ({"format": "ombria", "preprocessing": {}}, {"model_input_channels": 2}, "give 1 (VV from format ombria)"),
    ({"format": "ombria", "preprocessing": {"derived": "none"}}, {"model_input_channels": 1,
                                                                   "temporal": "bitemporal"}, "give 2 (VV"),
    ({"preprocessing": {"clip": [[-20, 0], [-30, 0]], "derived": "ratio"}}, {"model_input_channels": 2},
     "give 3 (2 bands per dataset_config.preprocessing.clip + ratio)"),
    ({"preprocessing": {"offset": [0, 0, 0], "scale": [1, 1, 1]}}, {}, "takes 2 input channels but the data give 3"),
    ({"format": "sen1floods11", "preprocessing": {"offset": [0], "scale": [1]}}, {},
     "dataset_config.preprocessing.offset: 1 values, but the data give 2 channels"),
    ({"preprocessing": {"offset": [0, 0], "scale": [1]}}, {}, "offset and scale need one value per channel each"),
])
def test_input_channels_that_contradict_the_spec_are_rejected(dataset, model, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        spec_from_dict({"dataset_config": {"data_root": "d", **dataset}, "model_config": model})


@pytest.mark.parametrize("dataset, model", [
    ({"format": "etci"}, {"model_input_channels": 2}),
    ({"format": "ombria", "preprocessing": {}}, {"model_input_channels": 2, "temporal": "bitemporal"}),
    # no preprocessing block: a checkpoint's may add a derived channel (train -m), so training checks
    ({"format": "etci"}, {"model_input_channels": 3}),
    ({"format": "etci"}, {"model_input_channels": 5}),
    ({"format": "ombria"}, {"model_input_channels": 1, "temporal": "bitemporal"}),
    ({}, {"model_input_channels": 5}),  # bands from the data: training checks them, the spec cannot
    ({"format": "folders"}, {"model_input_channels": 5}),  # 1 or 2 bands, whichever the images have
    ({"preprocessing": {"clip": [-30, 0], "derived": "diff"}}, {"model_input_channels": 7}),  # one range for all
])
def test_input_channels_the_spec_cannot_know_or_gets_right_pass(dataset, model):
    spec_from_dict({"dataset_config": {"data_root": "d", **dataset}, "model_config": model})


def test_several_errors_are_all_listed(tmp_path, capsys):
    spec = tmp_path / "many.yaml"
    spec.write_text("dataset_config:\n  sources: [{path: a, format: etcii}]\n"
                    "model_config: {num_layers: 19}\ntraining_config: {epochs: 0}\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)  # what train and the other commands print: one line that says where the rest are
    assert str(err.value).endswith(f"(and 2 more: run floodwatch spec validate {spec})")
    code, out, err = _cli(capsys, "spec", "validate", str(spec))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 4 and "Traceback" not in err
    assert lines[3] == "fix these first; data paths and channel counts are checked after"
    for line, field in zip(lines, ["dataset_config.sources[0].format", "model_config.num_layers",
                                   "training_config.epochs"]):
        assert line.startswith(f"error: many.yaml: {field}: ")


def test_every_missing_path_is_listed(tmp_path, capsys):
    spec = tmp_path / "paths.yaml"
    spec.write_text("dataset_config: {sources: [{path: a}, {path: b, split: b.csv}]}\n")
    code, _, err = _cli(capsys, "spec", "validate", str(spec))
    lines = err.strip().splitlines()
    assert code == 2 and all(line.startswith("error: paths.yaml: ") for line in lines)  # as field errors
    assert [line.split(": ")[2] for line in lines] == [
        "dataset_config.sources[0].path", "dataset_config.sources[1].path", "dataset_config.sources[1].split.csv"]
    assert "fix these first" not in err  # the spec parsed: nothing is left unchecked


def test_channel_and_path_problems_come_in_one_run(tmp_path, capsys):
    spec = tmp_path / "mixed.yaml"
    body = ("dataset_config: {data_root: nowhere, format: %s, preprocessing: {}}\n"
            "model_config: {model_input_channels: 3}\n")
    spec.write_text(body % "etcii")
    code, _, err = _cli(capsys, "spec", "validate", str(spec))  # a field error: nothing else can be checked
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0].startswith("error: mixed.yaml: dataset_config.format: 'etcii' is not a known format (did you "
                               "mean etci?")
    assert lines[1] == "fix these first; data paths and channel counts are checked after"
    spec.write_text(body % "etci")
    code, out, err = _cli(capsys, "spec", "validate", str(spec))
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "error: mixed.yaml: model_config.model_input_channels: the model takes 3 input channels but the data "
        "give 2 (VV+VH from format etci)",
        f"error: mixed.yaml: dataset_config.data_root: {tmp_path / 'nowhere'} does not exist"]
    with pytest.raises(SpecError) as exc:  # the commands that use a spec stop at the channels, as before
        load_spec(spec)
    assert str(exc.value) == ("mixed.yaml: model_config.model_input_channels: the model takes 3 input channels "
                              "but the data give 2 (VV+VH from format etci)")


@pytest.mark.parametrize("third, ok", [({"name": "nodata", "mapping_class": "ignore", "label_id": 127}, True),
                                       ({"name": "void", "mapping_class": "VOID", "label_id": 127}, True),
                                       ({"name": "cloud", "mapping_class": "cloud", "label_id": 127}, False)])
def test_an_ignore_class_is_a_third_target_class(third, ok):
    """What `data convert` writes (class_map.json: 127 = ignore) can be declared in a spec."""
    classes = [{"name": "notflood", "mapping_class": "notflood", "label_id": 0},
               {"name": "flood", "mapping_class": "flood", "label_id": 255}, third]
    data = {"dataset_config": {"data_root": "d", "data_class_config": {"target_classes": classes}}}
    if not ok:
        with pytest.raises(SpecError, match="exactly 2 mapping_class values besides 'ignore'"):
            spec_from_dict(data)
        return
    ds = spec_from_dict(data).dataset_config
    assert len(ds.class_map()) == 3 and [c["name"] for c in ds.class_map(scored_only=True)] == ["notflood", "flood"]


def test_validate_names_the_sources(tmp_path, capsys):
    for name in ("a", "b"):
        write_synthetic_dataset(tmp_path / name, chips=4, size=32)
    spec = tmp_path / "s.yaml"
    spec.write_text("dataset_config: {sources: [{path: a}, {path: b}]}\n")
    code, out, err = _cli(capsys, "spec", "validate", str(spec))
    assert code == 0 and "valid. data 2 source(s): a, b;" in out, err
