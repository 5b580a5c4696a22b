import pytest
import torch

from floodwatch.cli.main import main
from floodwatch.data.synthetic import synth_chips


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_export_into_triton_repository(tmp_path, trained_ckpt, capsys):
    out, repo = tmp_path / "m.onnx", tmp_path / "repo"
    code, stdout, _ = run_cli(["export", "-m", str(trained_ckpt), "-o", str(out), "--exporter", "torchscript",
                               "--triton-repo", str(repo), "--model-name", "flood", "--max-batch-size", "4"], capsys)
    assert code == 0 and "parity" in stdout
    assert (repo / "flood" / "1" / "model.onnx").is_file()
    assert "max_batch_size: 4" in (repo / "flood" / "config.pbtxt").read_text()


def test_export_gpu_variant_for_nvidias_triton_container(tmp_path, trained_ckpt, capsys):
    from floodwatch.serving.repository import read_config

    out, repo = tmp_path / "m.onnx", tmp_path / "repo"
    # no --triton-model: 'flood', the name serve, map and client call by default
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(out), "--exporter", "torchscript",
                            "--triton-repo", str(repo), "--triton-kind", "gpu"], capsys)
    assert code == 0, err
    config = read_config(repo / "flood" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx"
    assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_GPU]
    assert (repo / "flood" / "1" / "model.onnx").is_file()


def test_bad_inputs_are_one_line_errors(tmp_path, trained_ckpt, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    code, _, err = run_cli(["export", "-m", str(junk), "-o", str(tmp_path / "x.onnx")], capsys)
    assert code == 2 and "junk.pt" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["prune", "-m", str(trained_ckpt), "-o", str(tmp_path / "p.pt")], capsys)
    assert code == 2 and "--ratio, --norm-threshold" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(tmp_path / "x.onnx"),
                            "--precision", "int8"], capsys)
    assert code == 2 and "--calibration-data" in err


@pytest.mark.parametrize("flags, named", [(["--model-name", "flood"], "--triton-model"),
                                          (["--instances", "2"], "--instances"),
                                          (["--triton-kind", "gpu"], "--triton-kind"),
                                          (["--version-policy", "all"], "--version-policy")])
def test_triton_settings_without_a_repository_are_refused(tmp_path, trained_ckpt, capsys, flags, named):
    """A Triton repository's settings without --triton-repo would be dropped silently: refused before the export,
    which writes nothing."""
    out = tmp_path / "m.onnx"
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(out), *flags], capsys)
    assert code == 2 and err.startswith(f"error: {named}:") and "--triton-repo" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_int8_export_to_relative_paths(tmp_path, trained_ckpt, capsys, monkeypatch):
    """-o, --triton-repo relative to the working directory; the report names the files written; a failed
    export leaves no folder behind."""
    import json

    import numpy as np

    np.save(tmp_path / "calib.npy", np.stack([c.image for c in synth_chips(4, size=32, seed=3)]))
    np.save(tmp_path / "nan.npy", np.full((2, 2, 32, 32), np.nan, np.float32))
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli(["export", "-m", str(trained_ckpt), "-o", "sub/m.onnx", "--exporter", "torchscript",
                                 "--precision", "int8", "--calibration-data", "calib.npy", "--triton-repo", "repo",
                                 "--triton-model", "flood", "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["int8"]["onnx"] == "sub/m.onnx"
    # the fp32 export was an intermediate file, deleted: its entry must not list sub/m.onnx at the fp32 size
    assert report["onnx_export"]["onnx"] is None and report["onnx_export"]["precision"] == "fp32"
    assert report["int8"]["size_mb"] == round((tmp_path / "sub" / "m.onnx").stat().st_size / 2**20, 2)
    assert (tmp_path / "sub" / "m.onnx").is_file() and (tmp_path / "repo" / "flood" / "1" / "model.onnx").is_file()
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", "new/m.onnx", "--exporter", "torchscript",
                            "--precision", "int8", "--calibration-data", "nan.npy"], capsys)
    assert code == 2 and "nan.npy" in err and not (tmp_path / "new").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: TensorRT may work here")
def test_tensorrt_without_gpu_is_a_one_line_error(tmp_path, trained_ckpt, capsys):
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(tmp_path / "m.plan"),
                            "--format", "tensorrt"], capsys)
    assert code == 2 and "TensorRT" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.parametrize("exporter", ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)])
def test_height_or_width_alone_fixes_only_that_dimension(tmp_path, trained_ckpt, capsys, exporter):
    """The ONNX input, the --json report and the nvinfer sidecar agree; the other dimension stays dynamic."""
    import json

    import numpy as np
    import onnx

    from floodwatch.export.onnx import onnx_session

    for flag, fixed, dynamic, dims, probe in (("--height", 72, "width", "2;72;512", (1, 2, 72, 40)),
                                             ("--width", 40, "height", "2;512;40", (1, 2, 56, 40))):
        out = tmp_path / f"{flag[2:]}.onnx"
        code, stdout, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(out), "--exporter", exporter,
                                     flag, str(fixed), "--json"], capsys)
        assert code == 0, err
        assert json.loads(stdout)["onnx_export"]["dynamic"] == ["batch", dynamic]
        shape = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
        assert [d.HasField("dim_value") for d in shape] == [False, True, flag == "--height", flag == "--width"]
        assert f"infer-dims={dims}" in (tmp_path / f"{out.name}.nvinfer_config.txt").read_text().splitlines()
        logits = onnx_session(out, ["CPUExecutionProvider"]).run(None, {"input": np.zeros(probe, np.float32)})[0]
        assert logits.shape == (1, 2, *probe[2:])


def test_an_int8_summary_says_whose_parity_it_prints(tmp_path):
    """The parity with torch is measured on the fp32 export; for an int8 file it is not that file's own."""
    from floodwatch.cli.export import export_summary

    parity = {"max_abs_diff": 4.8e-6, "mask_agreement": 1.0}
    fp32 = export_summary({"onnx_export": {"parity": parity, "onnx": str(tmp_path / "m.onnx")}}, tmp_path / "m.onnx")
    int8 = export_summary({"onnx_export": {"parity": parity, "onnx": str(tmp_path / "m8.onnx")},
                           "int8": {"validation": {"mask_agreement": 0.9997}}}, tmp_path / "m8.onnx")
    plan = export_summary({"onnx_export": {"parity": parity, "onnx": None}}, tmp_path / "m.plan")
    assert "  parity with torch" in fp32[0] and "fp32" not in fp32[0]
    assert "its fp32 ONNX export's parity with torch" in int8[0]
    assert "int8 vs fp32: mask agreement 99.9700%" in int8[1]
    assert "its fp32 ONNX export's parity with torch" in plan[0]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_deepstream_sidecar_takes_the_max_batch_size(tmp_path, trained_ckpt, capsys, precision):
    """--max-batch-size reaches the nvinfer sidecar of every precision (it reached only int8's)."""
    import numpy as np

    np.save(tmp_path / "calib.npy", np.stack([c.image for c in synth_chips(4, size=32, seed=3)]))
    out = tmp_path / f"{precision}.onnx"
    extra = ["--calibration-data", str(tmp_path / "calib.npy")] if precision == "int8" else []
    code, _, err = run_cli(["export", "-m", str(trained_ckpt), "-o", str(out), "--exporter", "torchscript",
                            "--precision", precision, "--max-batch-size", "4", *extra], capsys)
    assert code == 0, err
    lines = (tmp_path / f"{out.name}.nvinfer_config.txt").read_text().splitlines()
    assert "batch-size=4" in lines and f"model-engine-file={precision}_b4_gpu0_{precision}.engine" in lines


def test_prune_hint_is_a_train_command_that_runs(tmp_path, trained_ckpt, capsys):
    """The hint printed after pruning names train's required options: `train -m X` alone is a usage error."""
    out = tmp_path / "p.pt"
    code, stdout, err = run_cli(["prune", "-m", str(trained_ckpt), "-o", str(out), "--ratio", "0.5"], capsys)
    assert code in (0, None), err
    hint = " ".join(stdout.split()).split("`")[1]
    assert hint.startswith("floodwatch train ") and {"-e", "-r", "-m"} <= set(hint.split())
