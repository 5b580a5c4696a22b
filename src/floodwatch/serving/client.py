"""Triton client for floodwatch models (HTTP or gRPC), and the Predictor that `--backend triton` uses.

The client trusts nothing it has not asked the server: it checks that the server is live and the model
ready, reads the input's name/dims/dtype from the model metadata and the pre-processing from the model
config `parameters` (the version's own, where the config numbers them by version), so raw dB chips get
exactly the `Preprocessing.apply` the model was trained with.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Callable, TypeVar

import numpy as np

from ..data.preprocess import Preprocessing
from ..errors import InvalidArgumentError, ServingError
from .repository import PREPROCESSING_KEY, version_key

T = TypeVar("T")

#: errors worth another try: the server is starting, restarting or momentarily overloaded
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "503", "502", "504")


def _strip_scheme(url: str) -> str:
    for scheme in ("http://", "https://", "grpc://"):
        if url.startswith(scheme):
            return url[len(scheme):].rstrip("/")
    return url.rstrip("/")


def softmax_water(logits: np.ndarray) -> np.ndarray:
    """(N, K, H, W) logits -> (N, H, W) probability of class 1, computed stably in float32."""
    z = logits.astype(np.float32, copy=False)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z[:, 1] / z.sum(axis=1)).astype(np.float32)


class FloodClient:
    """Talks to one model on a Triton server. `infer(batch)` -> logits; `predict_db(chips)` -> probability."""

    def __init__(self, url: str = "127.0.0.1:8000", *, protocol: str = "http", model_name: str = "flood",
                 model_version: str = "", timeout_s: float = 30.0, retries: int = 2, backoff_s: float = 0.2):
        if protocol not in ("http", "grpc"):
            raise ServingError(f"protocol: '{protocol}' is not 'http' or 'grpc'")
        if retries < 0:
            raise InvalidArgumentError(f"retries: {retries} is not a number of retries (0 or more)")
        if not timeout_s > 0:
            raise InvalidArgumentError(f"timeout_s: {timeout_s} is not a number of seconds > 0")
        self.url, self.protocol = _strip_scheme(url), protocol
        self.model_name, self.model_version = model_name, str(model_version or "")
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._check_ready()
        self._read_model()

    # -- connection ----------------------------------------------------------------------------------
    @property
    def _client(self):
        """One tritonclient per thread: the HTTP one is gevent-based and bound to the thread that made it."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
            self._clients.append(client)
        return client

    def _connect(self):
        try:
            if self.protocol == "http":
                import tritonclient.http as tc

                # its __del__ closes what __init__ made: one that fails half-built (a bad url) would print
                # an AttributeError traceback after our error, so it starts out as closed
                client = tc.InferenceServerClient.__new__(tc.InferenceServerClient)
                client._closed = True
                client.__init__(self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
                return client
            import tritonclient.grpc as tc

            return tc.InferenceServerClient(self.url)
        except ImportError as exc:
            raise ServingError(f"tritonclient is not installed ({exc}); pip install 'floodwatch[serve]'") from None
        except Exception as exc:
            raise ServingError(f"{self.protocol}://{self.url}: cannot create a Triton client ({exc})") from None

    @property
    def _tc(self):
        if self.protocol == "http":
            import tritonclient.http as tc
        else:
            import tritonclient.grpc as tc
        return tc

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client call; retry transient failures with exponential backoff; one ServingError otherwise."""
        if self.protocol == "grpc":
            kwargs.setdefault("client_timeout", self.timeout_s)
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                message, transient = self._describe(exc)
                if not transient or attempt == self.retries:
                    raise ServingError(f"{self.protocol}://{self.url} model '{self.model_name}': {what} failed: "
                                       f"{message}") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    @staticmethod
    def _describe(exc: Exception) -> tuple[str, bool]:
        from tritonclient.utils import InferenceServerException

        if isinstance(exc, InferenceServerException):
            status, msg = str(exc.status() or ""), str(exc.message() or exc)
            transient = any(t in status for t in _TRANSIENT) or "failed to connect" in msg.lower()
            # keep Triton's own sentence, without its request-id prefix and long config NOTE
            first = msg.strip().splitlines()[0] if msg.strip() else status
            first = first.replace("[request id: <id_unknown>] ", "").split(" NOTE: ")[0]
            return (f"{first} ({status})" if status else first), transient
        # HTTP client: sockets refuse, reset or time out (gevent raises its own Timeout, not an OSError)
        transient = isinstance(exc, (OSError, TimeoutError)) or type(exc).__name__ in ("Timeout", "timeout")
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, transient

    def _check_ready(self) -> None:
        if not self._call("server liveness check", self._client.is_server_live):
            raise ServingError(f"{self.protocol}://{self.url}: Triton server is not live")
        if not self._call("model readiness check", self._client.is_model_ready, self.model_name,
                          self.model_version):
            names = self.model_names()
            raise ServingError(f"{self.protocol}://{self.url}: model '{self.model_name}' version "
                               f"'{self.model_version or 'latest'}' is not ready (ready models: "
                               f"{', '.join(names) or 'none'})")

    def model_names(self) -> list[str]:
        index = self._call("repository index", self._client.get_model_repository_index)
        if self.protocol == "grpc":
            index = [{"name": m.name, "state": m.state} for m in index.models]
        return sorted({m["name"] for m in index if m.get("state") == "READY"})

    def _json(self, what: str, method: Callable[..., Any], *args: Any) -> dict:
        if self.protocol == "grpc":
            out = self._call(what, method, *args, as_json=True)
            return out.get("config", out)
        return self._call(what, method, *args)

    def _read_model(self) -> None:
        meta = self.metadata()
        config = self.config()
        if len(meta.get("inputs", [])) != 1:
            raise ServingError(f"model '{self.model_name}': expected one input, metadata lists "
                               f"{[i.get('name') for i in meta.get('inputs', [])]}")
        inp = meta["inputs"][0]
        self.input_name, self.input_dtype = inp["name"], inp["datatype"]
        self.input_shape = [int(d) for d in inp["shape"]]  # gRPC JSON gives int64 as strings
        self.output_name = meta["outputs"][0]["name"]
        if self.input_dtype != "FP32" or len(self.input_shape) != 4:
            raise ServingError(f"model '{self.model_name}': input '{self.input_name}' is {self.input_dtype} "
                               f"{self.input_shape}; a floodwatch model takes FP32 [N, C, H, W]")
        self.max_batch_size = int(config.get("max_batch_size", 0)) or 1
        params = config.get("parameters", {})
        key = PREPROCESSING_KEY
        if any(k.startswith(version_key(PREPROCESSING_KEY, "")) for k in params):  # per version
            served = [int(v) for v in meta.get("versions", []) if str(v).isdigit()]
            if not self.model_version and served:
                # 'latest' is the highest version ready; requests stay with the one whose pre-processing this
                # is, not one loaded later
                self.model_version = str(max(served))
            if self.model_version:
                key = version_key(PREPROCESSING_KEY, self.model_version)
        raw = params.get(key, {}).get("string_value")
        if not raw:
            raise ServingError(f"model '{self.model_name}': config has no '{key}' parameter, so the client cannot "
                               "pre-process chips (add the model with floodwatch)")
        try:
            self.preprocessing = Preprocessing.from_dict(json.loads(raw))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ServingError(f"model '{self.model_name}': parameter '{key}' is not valid pre-processing JSON "
                               f"({exc})") from None

    # -- queries -------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return self._json("model metadata", self._client.get_model_metadata, self.model_name, self.model_version)

    def config(self) -> dict:
        return self._json("model config", self._client.get_model_config, self.model_name, self.model_version)

    def statistics(self) -> dict:
        return self._json("inference statistics", self._client.get_inference_statistics, self.model_name,
                          self.model_version)

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):  # another thread's gevent client may refuse; it dies with it
                client.close()
        self._clients.clear()
        self._local = threading.local()

    def __enter__(self) -> "FloodClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inference -----------------------------------------------------------------------------------
    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4:
            raise ServingError(f"input: expected a (N, C, H, W) batch, got shape {batch.shape}")
        if batch.shape[0] == 0:
            raise ServingError("input: empty batch (N = 0)")
        want = self.input_shape[1:]
        for axis, (got, need) in enumerate(zip(batch.shape[1:], want), start=1):
            if need != -1 and got != need:
                raise ServingError(f"input: axis {axis} is {got} but model '{self.model_name}' input "
                                   f"'{self.input_name}' needs {need} (shape {self.input_shape})")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def infer_once(self, batch: np.ndarray) -> np.ndarray:
        """One request, as given (no splitting, no checks): the server's own validation applies."""
        tc = self._tc
        inp = tc.InferInput(self.input_name, list(batch.shape), self.input_dtype)
        inp.set_data_from_numpy(batch)
        out = [tc.InferRequestedOutput(self.output_name)]
        result = self._call("inference", self._client.infer, self.model_name, [inp],
                            model_version=self.model_version, outputs=out)
        return result.as_numpy(self.output_name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Pre-processed (N, C, H, W) float32 -> (N, K, H, W) logits, sent in requests of <= max_batch_size."""
        batch = self._check_batch(batch)
        parts = [self.infer_once(batch[i:i + self.max_batch_size])
                 for i in range(0, batch.shape[0], self.max_batch_size)]
        return np.concatenate(parts, axis=0)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Pre-processed batch -> (N, H, W) water probability (the Predictor protocol)."""
        return softmax_water(self.infer(batch))

    @property
    def served(self) -> str:
        """What made the masks, for summary.json and stats.json ('model'): the server, the model and the version
        the client resolved (without model_version it stays with the highest one ready at start)."""
        return (f"triton {self.url} {self.model_name}"
                + (f" version {self.model_version}" if self.model_version else ""))

    def predict_db(self, chips_db: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Raw dB chips (N, bands, H, W) -> water probability, with the model's own pre-processing."""
        return self.predict(self.preprocessing.apply(chips_db, valid))


class TritonPredictor(FloodClient):
    """`load_predictor(model, backend="triton", url=..., model_name=..., protocol=...)`: a model path is ignored,
    the server's model is the model."""

    backend = "triton"  # what stats.json records as having run the model (inference.base.predictor_backend)

    def __init__(self, url: str = "127.0.0.1:8000", model_name: str = "flood", protocol: str = "http",
                 model_version: str = "", timeout_s: float = 30.0, retries: int = 2, **_ignored: Any):
        super().__init__(url, protocol=protocol, model_name=model_name, model_version=model_version,
                         timeout_s=timeout_s, retries=retries)
