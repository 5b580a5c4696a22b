import pytest
import torch

from floodwatch.models import build_model, load_encoder_weights
from floodwatch.models.resnet import ResNetEncoder
from floodwatch.models.weights import adapt_first_conv


@pytest.mark.parametrize("depth", [10, 18, 34, 50])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_shapes_every_depth_and_channel_count(depth, channels):
    model = build_model(num_layers=depth, in_channels=channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 64, 96))
    assert out.shape == (2, 2, 64, 96)


def test_input_not_multiple_of_32_keeps_size():
    model = build_model(num_layers=10, in_channels=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, 50, 70)).shape == (1, 2, 50, 70)


# Key names and shapes of torchvision.models.resnet18().state_dict(), written out by hand because torchvision
# cannot be installed here: a few spot checks of the layout every torchvision ResNet checkpoint has.
TORCHVISION_R18_KEYS = {
    "conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.weight": (64,), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,), "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.0.conv1.weight": (512, 256, 3, 3), "layer4.1.bn2.bias": (512,), "fc.weight": (1000, 512),
}


def _fake_torchvision_state_dict(depth: int) -> dict[str, torch.Tensor]:
    enc = ResNetEncoder(depth, in_channels=3)
    sd = {k: torch.randn_like(v.float()) if v.is_floating_point() else v for k, v in enc.state_dict().items()}
    sd["fc.weight"] = torch.randn(1000, enc.out_channels[-1])
    sd["fc.bias"] = torch.randn(1000)
    return sd


def test_encoder_keys_match_torchvision_layout():
    own = ResNetEncoder(18, in_channels=3).state_dict()
    for key, shape in TORCHVISION_R18_KEYS.items():
        if key.startswith("fc."):
            continue
        assert tuple(own[key].shape) == shape, key
    assert "layer1.0.downsample.0.weight" not in own  # identity shortcut, as torchvision


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_state_dict_loads_and_first_conv_is_adapted(tmp_path, depth):
    sd = _fake_torchvision_state_dict(depth)
    path = tmp_path / "imagenet.pth"
    torch.save(sd, path)
    model = build_model(num_layers=depth, in_channels=2, pretrained=str(path))
    enc = model.encoder.state_dict()
    assert torch.equal(enc["layer3.1.conv1.weight"], sd["layer3.1.conv1.weight"])
    expected = sd["conv1.weight"].mean(1, keepdim=True).repeat(1, 2, 1, 1) * 1.5
    assert torch.allclose(enc["conv1.weight"], expected)
    report = load_encoder_weights(model.encoder, path)
    assert report["missing"] == [] and report["skipped"] == []


def test_adapt_first_conv_preserves_response_to_gray_input():
    w = torch.randn(8, 3, 7, 7)
    x3 = torch.ones(1, 3, 7, 7)
    x2 = torch.ones(1, 2, 7, 7)
    y3 = torch.nn.functional.conv2d(x3, w)
    y2 = torch.nn.functional.conv2d(x2, adapt_first_conv(w, 2))
    assert torch.allclose(y3, y2, atol=1e-5)


def test_all_projections_and_no_batchnorm():
    enc = ResNetEncoder(18, in_channels=2, all_projections=True, use_batch_norm=False)
    keys = enc.state_dict().keys()
    assert "layer1.1.downsample.0.weight" in keys
    assert not any("bn" in k or "running_mean" in k for k in keys)


def test_checkpoint_with_impossible_model_config_is_a_checkpoint_error(tmp_path):
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.errors import CheckpointError
    from floodwatch.models.checkpoint import load_model, read_checkpoint, save_checkpoint

    cfg = {"num_layers": 10, "in_channels": 2}
    path = save_checkpoint(tmp_path / "ok.pt", build_model(**cfg), model_config=cfg, preprocessing=Preprocessing())
    state = read_checkpoint(path)
    for name, change in (("depth", {"model_config": {**cfg, "num_layers": 12}}),
                         ("weights", {"model_config": {**cfg, "num_layers": 18}})):
        torch.save({**state, **change}, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=f"{name}.pt"):
            load_model(tmp_path / f"{name}.pt")
    torch.save({k: v for k, v in state.items() if k != "preprocessing"}, tmp_path / "nopre.pt")
    with pytest.raises(CheckpointError, match="lacks preprocessing"):
        load_model(tmp_path / "nopre.pt")


def test_weights_that_do_not_fit_name_their_first_misfit(tmp_path):
    """torch's first line ("Error(s) in loading state_dict for UNet:") said nothing: the key and the shapes do."""
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.errors import CheckpointError
    from floodwatch.models.checkpoint import load_model, read_checkpoint, save_checkpoint

    cfg = {"num_layers": 10, "in_channels": 2}
    state = read_checkpoint(save_checkpoint(tmp_path / "ok.pt", build_model(**cfg), model_config=cfg,
                                            preprocessing=Preprocessing()))
    weights = state["model_state"]
    first = next(iter(weights))
    wider = {"model_config": {**cfg, "in_channels": 3}}  # the first conv then takes 3 channels, the weights 2
    shape = tuple(weights[first].shape)
    cases = {"shape": (wider, rf"'{first}' is \({shape[0]}, 2, .*has \({shape[0]}, 3, "),
             "missing": ({"model_state": {k: v for k, v in weights.items() if k != first}}, f"lacks '{first}' \\(1 missing"),
             "extra": ({"model_state": {**weights, "head.extra": torch.zeros(1)}}, "has 'head.extra', which the network")}
    for name, (change, match) in cases.items():
        torch.save({**state, **change}, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=match) as err:
            load_model(tmp_path / f"{name}.pt")
        assert "\n" not in str(err.value) and "Error(s)" not in str(err.value)


def test_build_model_refuses_a_misspelt_parameter():
    with pytest.raises(TypeError, match="num_layer"):
        build_model(num_layer=10)  # noqa: the misspelling is the point


def test_build_kwargs_are_exactly_build_model_parameters():
    import inspect

    from floodwatch.config import ModelConfig

    kwargs = ModelConfig(num_layers=10, model_input_channels=3, temporal="bitemporal").build_kwargs()
    assert set(kwargs) <= set(inspect.signature(build_model).parameters)
    model = build_model(**kwargs)
    assert model.encoder.conv1.in_channels == 3 and "temporal" not in kwargs


def test_model_from_config_skips_metadata_and_names_an_unknown_key():
    from floodwatch.errors import InvalidArgumentError
    from floodwatch.models import model_from_config

    model = model_from_config({"num_layers": 10, "in_channels": 4, "temporal": "bitemporal", "pretrained": "x.pth"})
    assert model.encoder.conv1.in_channels == 4  # 'pretrained' is not fetched: the checkpoint has the weights
    with pytest.raises(InvalidArgumentError, match=r"^num_layer: not a model_config parameter"):
        model_from_config({"num_layer": 10})


def test_checkpoint_with_a_misspelt_model_config_key_is_a_checkpoint_error(tmp_path):
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.errors import CheckpointError
    from floodwatch.models.checkpoint import load_model, read_checkpoint, save_checkpoint

    cfg = {"num_layers": 10, "in_channels": 2}
    path = save_checkpoint(tmp_path / "ok.pt", build_model(**cfg), model_config=cfg, preprocessing=Preprocessing())
    torch.save({**read_checkpoint(path), "model_config": {**cfg, "in_chanels": 2}}, tmp_path / "typo.pt")
    with pytest.raises(CheckpointError, match="typo.pt.*in_chanels"):
        load_model(tmp_path / "typo.pt")


def test_a_model_file_of_the_other_kind_is_named_by_its_content(tmp_path):
    """An ONNX file given for a checkpoint (train -m, spec validate -m, evaluate --backend torch) was "not a torch
    file", and a checkpoint for an ONNX file a protobuf DecodeError: each now says which kind it is, whatever its
    name. Encoder weights (a torch file, no floodwatch header) are still no checkpoint, silently."""
    import re

    import onnx
    from onnx import TensorProto, helper

    from floodwatch.errors import CheckpointError
    from floodwatch.models.checkpoint import checkpoint_or_none, load_model
    from floodwatch.training.api import resolve_pretrained

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.pt"))  # named as a checkpoint: the content tells
    onnx_file = tmp_path / "model.pt"
    message = f"{onnx_file}: is an ONNX file, not a torch checkpoint (.pt); give the checkpoint it was exported from"
    for load in (load_model, checkpoint_or_none, resolve_pretrained):
        with pytest.raises(CheckpointError, match=f"^{re.escape(message)}"):
            load(onnx_file)
    torch.save(ResNetEncoder(10).state_dict(), tmp_path / "encoder.pth")
    assert checkpoint_or_none(tmp_path / "encoder.pth") is None
    from floodwatch.models.checkpoint import is_onnx_file, is_torch_file

    (tmp_path / "notes.txt").write_text("not a model")
    files = (onnx_file, tmp_path / "encoder.pth", tmp_path / "notes.txt")
    assert [(is_torch_file(p), is_onnx_file(p)) for p in files] == [(False, True), (True, False), (False, False)]
