"""Triton model repositories: `NAME/config.pbtxt` + numbered version folders.

Two variants of the same model folder:
  * kind="gpu": `platform: "onnxruntime_onnx"` (model.onnx) or `"tensorrt_plan"` (model.plan) on KIND_GPU;
    this is what NVIDIA's own Triton container runs on a GPU host.
  * kind="cpu": `backend: "python"` with a `model.py` that runs model.onnx with ONNX Runtime; this is what
    the CPU-only `tritonserver` shipped in nvidia-pytriton can run (it has no onnxruntime backend).

The config is built as Triton's own `ModelConfig` protobuf message and written in protobuf text format,
so a field Triton does not know cannot be written; `read_config` parses it back against the same message.
The floodwatch pre-processing travels in `parameters`, so a client needs nothing but the server: per
version (`floodwatch_preprocessing_v<N>`, likewise the class map), since a model retrained on more data has
other offsets and versions are served side by side; the unnumbered keys hold the newest version's, for
clients that predate the numbered ones.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..data.preprocess import Preprocessing
from ..errors import ServingError
from ..io import atomic_dir, atomic_path, dumps_json, read_text

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PREPROCESSING_KEY = "floodwatch_preprocessing"
CLASS_MAP_KEY = "floodwatch_class_map"
ONNX_METADATA_KEY = "floodwatch"
MODEL_PY = Path(__file__).with_name("python_backend_model.py")

VersionPolicy = str | Sequence[int]


def _model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:  # tritonclient is the `serve` extra
        raise ServingError(f"tritonclient is not installed ({exc}); pip install 'floodwatch[serve]'") from None
    return model_config_pb2


def onnx_signature(model_path: Path) -> dict[str, Any]:
    """Input/output dims (without batch; -1 = dynamic) and the `floodwatch` metadata JSON of an ONNX file."""
    import onnx

    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:
        raise ServingError(f"{model_path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from None

    def dims(value_info) -> list[int]:
        shape = value_info.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else -1 for d in shape][1:]

    graph_inputs = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in graph_inputs]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ServingError(f"{model_path}: expected one input and one output, got {len(inputs)} and "
                           f"{len(proto.graph.output)}")
    meta_raw = {p.key: p.value for p in proto.metadata_props}.get(ONNX_METADATA_KEY)
    try:
        meta = json.loads(meta_raw) if meta_raw else {}
    except json.JSONDecodeError:
        raise ServingError(f"{model_path}: metadata '{ONNX_METADATA_KEY}' is not valid JSON") from None
    float32 = onnx.TensorProto.FLOAT
    for name, info in (("input", inputs[0]), ("output", proto.graph.output[0])):
        if info.type.tensor_type.elem_type != float32:
            raise ServingError(f"{model_path}: {name} '{info.name}' is "
                               f"{onnx.TensorProto.DataType.Name(info.type.tensor_type.elem_type)}, floodwatch "
                               "serves float32 in and out (export fp16 models with keep_io_types)")
    return {"input_name": inputs[0].name, "output_name": proto.graph.output[0].name,
            "input_dims": dims(inputs[0]), "output_dims": dims(proto.graph.output[0]), "metadata": meta}


def existing_versions(model_dir: str | Path) -> list[int]:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _version_policy(cfg, policy: VersionPolicy) -> None:
    if policy == "latest":
        cfg.version_policy.latest.num_versions = 1
    elif policy == "all":
        cfg.version_policy.all.SetInParent()
    elif isinstance(policy, str):
        raise ServingError(f"version_policy: '{policy}' is not 'latest', 'all' or a list of versions")
    else:
        versions = [int(v) for v in policy]
        if not versions or min(versions) < 1:
            raise ServingError(f"version_policy: versions must be positive integers, got {list(policy)}")
        cfg.version_policy.specific.versions.extend(versions)


def version_key(key: str, version: int | str) -> str:
    """The `parameters` key of version `version`'s value of `key` (PREPROCESSING_KEY, CLASS_MAP_KEY)."""
    return f"{key}_v{version}"


def build_config(name: str, *, kind: str, model_file: str, input_dims: Sequence[int], output_dims: Sequence[int],
                 preprocessing: Preprocessing, class_map: list | None = None, max_batch_size: int = 16,
                 instance_count: int = 1, dynamic_batching: bool = True,
                 preferred_batch_sizes: Sequence[int] | None = None, max_queue_delay_us: int = 2000,
                 version_policy: VersionPolicy = "latest", ort_threads: int = 0,
                 io_names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME)):
    """The ModelConfig protobuf message for one floodwatch model."""
    pb = _model_config_pb2()
    if kind not in ("cpu", "gpu"):
        raise ServingError(f"kind: '{kind}' is not 'cpu' or 'gpu'")
    if max_batch_size < 1:
        raise ServingError(f"max_batch_size: must be >= 1, got {max_batch_size}")
    if instance_count < 1:
        raise ServingError(f"instance_count: must be >= 1, got {instance_count}")
    cfg = pb.ModelConfig(name=name, max_batch_size=int(max_batch_size))
    if kind == "cpu" and model_file != "model.onnx":
        raise ServingError(f"{model_file}: the CPU (python backend) variant runs ONNX files only")
    cfg.backend, cfg.platform = _runtime(kind, model_file)
    cfg.input.add(name=io_names[0], data_type=pb.TYPE_FP32, dims=list(input_dims))
    cfg.output.add(name=io_names[1], data_type=pb.TYPE_FP32, dims=list(output_dims))
    group = cfg.instance_group.add(count=int(instance_count))
    group.kind = pb.ModelInstanceGroup.KIND_CPU if kind == "cpu" else pb.ModelInstanceGroup.KIND_GPU
    if dynamic_batching:
        cfg.dynamic_batching.max_queue_delay_microseconds = int(max_queue_delay_us)
        sizes = [int(s) for s in (preferred_batch_sizes or [])]
        if any(s < 1 or s > max_batch_size for s in sizes):
            raise ServingError(f"preferred_batch_sizes: {sizes} must lie in 1..max_batch_size ({max_batch_size})")
        cfg.dynamic_batching.preferred_batch_size.extend(sizes)
    _version_policy(cfg, version_policy)
    cfg.parameters[PREPROCESSING_KEY].string_value = dumps_json(preprocessing.to_dict())
    cfg.parameters[CLASS_MAP_KEY].string_value = dumps_json(class_map or [])
    if kind == "cpu":
        cfg.parameters["ort_intra_op_threads"].string_value = str(int(ort_threads))
    return cfg


def _runtime(kind: str, model_file: str) -> tuple[str, str]:
    """(backend, platform) of a config.pbtxt: one of the two is set."""
    if kind == "cpu":
        return "python", ""
    return "", "tensorrt_plan" if model_file == "model.plan" else "onnxruntime_onnx"


def check_new_version(repo_dir: str | Path, name: str, *, kind: str, model_file: str) -> None:
    """What add_model_version would refuse about the model `name` already in the repository (its config does
    not parse, or it runs on another backend), checked before the work that makes the new version."""
    cfg_path = Path(repo_dir) / name / "config.pbtxt"
    if not cfg_path.exists():
        return
    old = read_config(cfg_path)
    backend, platform = _runtime(kind, model_file)
    if (old.backend, old.platform) != (backend, platform):
        raise ServingError(f"{cfg_path}: model '{name}' is served by {old.backend or old.platform or 'no backend'}; "
                           f"a {backend or platform} version cannot join it (use another model name)")


def write_config(model_dir: Path, cfg) -> Path:
    from google.protobuf import text_format

    path = Path(model_dir) / "config.pbtxt"
    with atomic_path(path) as tmp:
        tmp.write_text(text_format.MessageToString(cfg))
    read_config(path)  # what Triton will parse must parse
    return path


def read_config(path: str | Path):
    """Parse a config.pbtxt against Triton's ModelConfig message; ServingError names the file and the fault."""
    from google.protobuf import text_format

    pb = _model_config_pb2()
    path = Path(path)
    if not path.is_file():
        raise ServingError(f"{path}: config.pbtxt not found")
    try:
        return text_format.Parse(read_text(path, error=ServingError, what="config.pbtxt"), pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ServingError(f"{path}: not a valid Triton ModelConfig ({exc})") from None


def check_repository(repo_dir: str | Path, backends: Sequence[str] = ("python",), *,
                     allow_empty: bool = False) -> list[str]:
    """The model names in `repo_dir`, after what can be checked without Triton: at least one model (unless
    `allow_empty`: a polling server loads models exported into it later), each with a config.pbtxt that
    parses, a backend in `backends` and a version folder. Triton's own errors for these name no file (an
    unparsed config makes it guess a backend from the model file)."""
    repo_dir = Path(repo_dir)
    models = sorted(p for p in repo_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not models and not allow_empty:
        raise ServingError(f"{repo_dir}: no model in it (a model is a folder NAME/ with config.pbtxt and version "
                           "folders 1/, 2/, ...; an export into this repository writes one)")
    for model_dir in models:
        path = model_dir / "config.pbtxt"
        cfg = read_config(path)
        if cfg.backend not in backends:
            runs = (f"backend '{cfg.backend}'" if cfg.backend else
                    f"platform '{cfg.platform}'" if cfg.platform else "no backend")
            raise ServingError(f"{path}: names {runs}; this tritonserver runs backend "
                               f"{' or '.join(repr(b) for b in backends)} only (an export of Triton kind 'cpu' writes "
                               "that; GPU models run in NVIDIA's Triton container)")
        if not existing_versions(model_dir):
            raise ServingError(f"{model_dir}: no version folder (1/, 2/, ...) in model '{model_dir.name}'")
    return [m.name for m in models]


def check_model_name(name: str) -> None:
    """A Triton model name is the model's folder in the repository: one folder name, not hidden."""
    if not name or "/" in name or name.startswith("."):
        raise ServingError(f"model_name: '{name}' is not a valid folder name")


def add_model_version(repo_dir: str | Path, name: str, model_path: str | Path, *, max_batch_size: int = 16,
                      instance_count: int = 1, kind: str = "cpu", dynamic_batching: bool = True,
                      preferred_batch_sizes: Sequence[int] | None = None, max_queue_delay_us: int = 2000,
                      version_policy: VersionPolicy = "latest",
                      preprocessing: Preprocessing | dict | None = None, class_map: list | None = None,
                      ort_threads: int = 0) -> Path:
    """Add `model_path` (.onnx or TensorRT .plan) as version N+1 of model `name`; return the version folder.

    The config.pbtxt is (re)written for the whole model from these arguments, keeping the versions already
    there their own pre-processing and class map. The pre-processing comes from `preprocessing` or else from
    the ONNX file's `floodwatch` metadata (written by floodwatch export).
    """
    repo_dir, model_path = Path(repo_dir), Path(model_path)
    check_model_name(name)
    if not model_path.is_file():
        raise ServingError(f"{model_path}: model file not found")
    suffix = model_path.suffix.lower()
    if suffix not in (".onnx", ".plan", ".engine"):
        raise ServingError(f"{model_path}: expected an .onnx or TensorRT .plan file")
    model_file = "model.onnx" if suffix == ".onnx" else "model.plan"
    if model_file == "model.plan" and kind != "gpu":
        raise ServingError(f"{model_path}: a TensorRT plan needs kind='gpu'")

    if model_file == "model.onnx":
        sig = onnx_signature(model_path)
        meta = sig["metadata"]
        input_dims, output_dims = sig["input_dims"], sig["output_dims"]
        # onnxruntime_onnx matches config names to the graph's, so take them from the graph
        io_names = (sig["input_name"], sig["output_name"])
        if len(input_dims) != 3 or len(output_dims) != 3:
            raise ServingError(f"{model_path}: expected (N,C,H,W) input and output, got input dims "
                               f"{['N', *input_dims]}")
    else:
        meta, input_dims, output_dims, io_names = {}, None, None, (INPUT_NAME, OUTPUT_NAME)
    if preprocessing is None:
        if "preprocessing" not in meta:
            raise ServingError(f"{model_path}: no pre-processing given and no '{ONNX_METADATA_KEY}' metadata in "
                               "the file (floodwatch's export writes it; or pass `preprocessing`)")
        preprocessing = meta["preprocessing"]
    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing.from_dict(preprocessing)
    class_map = class_map or meta.get("class_map")
    if input_dims is None:  # a plan's shapes are not readable without TensorRT; take them from the metadata
        input_dims = [preprocessing.channels, -1, -1]
        output_dims = [len(class_map) if class_map else 2, -1, -1]
    if input_dims[0] not in (-1, preprocessing.channels):
        raise ServingError(f"{model_path}: model takes {input_dims[0]} channels but the pre-processing makes "
                           f"{preprocessing.channels}")

    model_dir = repo_dir / name
    version = (existing_versions(model_dir) or [0])[-1] + 1
    cfg = build_config(name, kind=kind, model_file=model_file, input_dims=input_dims, output_dims=output_dims,
                       preprocessing=preprocessing, class_map=class_map, max_batch_size=max_batch_size,
                       instance_count=instance_count, dynamic_batching=dynamic_batching,
                       preferred_batch_sizes=preferred_batch_sizes, max_queue_delay_us=max_queue_delay_us,
                       version_policy=version_policy, ort_threads=ort_threads, io_names=io_names)
    check_new_version(repo_dir, name, kind=kind, model_file=model_file)
    _keep_version_parameters(cfg, model_dir, version)

    model_dir.mkdir(parents=True, exist_ok=True)
    # The version folder appears whole (atomic rename), so a polling server never loads half a model.
    with atomic_dir(model_dir / str(version)) as tmp:
        shutil.copyfile(model_path, tmp / model_file)
        if kind == "cpu":
            shutil.copyfile(MODEL_PY, tmp / "model.py")
    write_config(model_dir, cfg)
    return model_dir / str(version)


def _keep_version_parameters(cfg, model_dir: Path, version: int) -> None:
    """Number the new version's pre-processing and class map in `cfg` and carry over those of the versions
    still in `model_dir`: from the old config, or, for a repository written before they were numbered, from
    each version's ONNX metadata (the newest of them: the old config's unnumbered values)."""
    params = cfg.parameters
    for key in (PREPROCESSING_KEY, CLASS_MAP_KEY):
        params[version_key(key, version)].string_value = params[key].string_value
    cfg_path = model_dir / "config.pbtxt"
    old = read_config(cfg_path).parameters if cfg_path.is_file() else {}
    versions = existing_versions(model_dir)
    numbered = any(k.startswith(version_key(PREPROCESSING_KEY, "")) for k in old)
    for v in versions:
        meta = None
        for key in (PREPROCESSING_KEY, CLASS_MAP_KEY):
            if version_key(key, v) in old:
                value = old[version_key(key, v)].string_value
            elif not numbered and v == versions[-1] and key in old:
                value = old[key].string_value
            else:
                if meta is None:
                    onnx_file = model_dir / str(v) / "model.onnx"
                    meta = onnx_signature(onnx_file)["metadata"] if onnx_file.is_file() else {}
                field = "preprocessing" if key == PREPROCESSING_KEY else "class_map"
                if field not in meta:
                    continue  # unknown: a client asking for this version is told so
                value = dumps_json(meta[field])
            params[version_key(key, v)].string_value = value
