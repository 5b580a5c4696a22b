"""Run the real `tritonserver` that ships inside nvidia-pytriton (CPU, Python backend) on a model repository.

On a GPU host, NVIDIA's own Triton container can serve the same repository's GPU models instead
(`docker run --gpus all -v $PWD/repo:/models nvcr.io/nvidia/tritonserver:<tag>-py3 tritonserver
--model-repository /models`); the floodwatch client talks to either.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable

from ..errors import InvalidArgumentError, ServingError
from ..io import ensure_output_dir
from ..listen import listen_problem
from .repository import check_repository

PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


def triton_dist() -> Path:
    """The `tritonserver/` folder inside the installed pytriton package."""
    try:
        import pytriton
    except ImportError:
        raise ServingError("nvidia-pytriton is not installed, so there is no tritonserver binary; "
                           "pip install 'floodwatch[serve]'") from None
    dist = Path(pytriton.__file__).parent / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise ServingError(f"{dist}: no bin/tritonserver in this nvidia-pytriton install")
    return dist


def _backends_dir(dist: Path, workdir: Path) -> Path:
    """A backends folder whose python backend has the stub built for *this* Python version."""
    python = workdir / "backends" / "python"
    python.mkdir(parents=True)
    for name in PYTHON_BACKEND_FILES:
        (python / name).symlink_to(dist / "backends" / "python" / name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServingError(f"{stub}: nvidia-pytriton has no Python backend stub for Python {version}")
    (python / "triton_python_backend_stub").symlink_to(stub)
    return python.parent


def server_env(dist: Path) -> dict[str, str]:
    """Environment in which the stub embeds this interpreter's libpython and imports its packages."""
    env = os.environ.copy()
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(dist.parent.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in [*libs, env.get("LD_LIBRARY_PATH", "")] if p)
    import site

    paths = [*site.getsitepackages(), *sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in [*paths, env.get("PYTHONPATH", "")] if p))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class TritonServer:
    """A tritonserver process; `with TritonServer(repo) as s:` starts it, waits until ready, stops it."""

    def __init__(self, model_repository: str | Path, *, host: str = "127.0.0.1", http_port: int = 8000,
                 grpc_port: int = 8001, metrics_port: int = 8002, poll_seconds: int | None = None,
                 log_verbose: int = 0, log_file: str | Path | None = None, startup_timeout_s: float = 120.0,
                 exit_timeout_s: int = 5, stop_grace_s: float = 15.0, echo: bool = False):
        self.model_repository = Path(model_repository).resolve()
        if self.model_repository.exists() and not self.model_repository.is_dir():
            raise ServingError(f"{model_repository}: is a file, not a model repository folder")
        if not self.model_repository.is_dir():
            raise ServingError(f"{model_repository}: model repository folder not found")
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        ports = self._ports()
        for name, port in ports.items():
            if not 1 <= port <= 65535:  # tritonserver would take 70000 as 4464, and -5 as nothing it says
                raise InvalidArgumentError(f"{name}: {port} is not a TCP port (1-65535)")
        for (name, port), (other, other_port) in itertools.combinations(ports.items(), 2):
            if port == other_port:  # tritonserver's own refusal is buried in its usage text
                raise InvalidArgumentError(f"{name}, {other}: both {port}; each endpoint needs its own port")
        try:
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise InvalidArgumentError(f"host: '{host}' is not an address to bind ({exc.strerror})") from None
        except UnicodeError:  # an empty label ('127.0.0..1'), refused before any lookup
            raise InvalidArgumentError(f"host: '{host}' is not a host name or address") from None
        if poll_seconds is not None and not poll_seconds >= 1:  # a period of 0 or less is no period
            raise InvalidArgumentError(f"poll_seconds: {poll_seconds} is not a number of seconds >= 1")
        if not startup_timeout_s > 0:
            raise InvalidArgumentError(f"startup_timeout_s: {startup_timeout_s} is not a number of seconds > 0")
        self.host, self.poll_seconds, self.log_verbose = host, poll_seconds, log_verbose
        self.startup_timeout_s, self.stop_grace_s, self.echo = startup_timeout_s, stop_grace_s, echo
        # Triton waits this long for open client connections on SIGTERM before it unloads the models.
        self.exit_timeout_s = exit_timeout_s
        self._log_file = Path(log_file) if log_file else None
        if self._log_file is not None:
            if self._log_file.is_dir():
                raise ServingError(f"log_file: {log_file} is a folder, not a file name")
            ensure_output_dir(self._log_file.parent)
        self._proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log: IO | None = None

    # -- endpoints ------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path | None:
        return self._log_file

    def command(self, backends: Path) -> list[str]:
        dist = triton_dist()
        cmd = [str(dist / "bin" / "tritonserver"), f"--model-repository={self.model_repository}",
               f"--backend-directory={backends}", f"--cache-directory={dist / 'caches'}",
               f"--http-address={self.host}", f"--http-port={self.http_port}",
               f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
               f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
               "--allow-metrics=true", "--allow-gpu-metrics=false", f"--log-verbose={self.log_verbose}",
               "--exit-on-error=true", "--strict-readiness=true", f"--exit-timeout-secs={int(self.exit_timeout_s)}"]
        if self.poll_seconds is not None:
            cmd += ["--model-control-mode=poll", f"--repository-poll-secs={int(self.poll_seconds)}"]
        return cmd

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> "TritonServer":
        if self.running:
            return self
        dist = triton_dist()
        # only the python backend is linked in (_backends_dir); an empty repository would serve nothing
        check_repository(self.model_repository, backends=("python",), allow_empty=self.poll_seconds is not None)
        self._check_ports()
        self._workdir = Path(tempfile.mkdtemp(prefix="floodwatch-triton-"))
        backends = _backends_dir(dist, self._workdir)
        if self._log_file is None:
            self._log_file = self._workdir / "tritonserver.log"
        if self.echo:
            out = None  # inherit the terminal: `floodwatch serve` shows Triton's own log
        else:
            # appended, as servers' logs are: a log file the user names may hold earlier runs (or be
            # another file given by mistake); log_tail reads this run's part only
            self._log = out = open(self._log_file, "ab")
            self._log_start = out.tell()
        self._proc = subprocess.Popen(self.command(backends), env=server_env(dist), stdout=out,
                                      stderr=subprocess.STDOUT if out else None, start_new_session=True)
        try:
            self.wait_ready(self.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_ports(self) -> None:
        """Each port can be listened on at every address of the host (floodwatch.listen): until tritonserver has
        loaded its models, the readiness check would reach whatever server holds the HTTP port, and take it
        for this one."""
        for name, port in self._ports().items():
            problem = listen_problem(self.host, port)
            if problem is not None:
                field, message = problem
                raise ServingError(f"{name if field == 'port' else 'host'}: {message}")

    def _ports(self) -> dict[str, int]:
        return {"http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": self.metrics_port}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _get(self, path: str, timeout: float = 2.0) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=timeout) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def is_ready(self) -> bool:
        """Server live and every model in the repository ready (strict readiness)."""
        return self._get("/v2/health/live") == 200 and self._get("/v2/health/ready") == 200

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                code = self._proc.returncode if self._proc else None
                raise ServingError(f"tritonserver exited with code {code} while starting on "
                                   f"{self.model_repository}: {self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.25)
        raise ServingError(f"tritonserver on {self.model_repository} not ready after {timeout_s:.0f} s: "
                           f"{self.log_tail()}")

    def wait_model_ready(self, name: str, version: str = "", timeout_s: float = 60.0) -> None:
        """For poll mode: wait until a model (version) the server picks up on its own is ready."""
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/ready"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._get(path) == 200:
                return
            time.sleep(0.25)
        raise ServingError(f"model '{name}' version '{version or 'latest'}' not ready after {timeout_s:.0f} s: "
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        if self._log_file is None or not self._log_file.is_file():
            return "(Triton's log is above)" if self.echo else "(no log)"
        with open(self._log_file, "rb") as f:
            f.seek(getattr(self, "_log_start", 0))
            text = f.read().decode(errors="replace").strip().splitlines()
        # glog's error prefix; on a host without CUDA every start logs one that is no fault
        errors = [line for line in text if re.match(r"E\d{4} ", line) and "CudaDriverHelper" not in line]
        # a Python backend error carries its traceback inside the line, newlines escaped: its first line says it
        return " | ".join(line.split("\\n")[0].rstrip() for line in (errors or text)[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """SIGTERM (Triton drains in-flight requests and unloads models), then SIGKILL after the grace period."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self.exit_timeout_s + self.stop_grace_s)
            except subprocess.TimeoutExpired:
                # the Python stubs are in the same session: kill them with the server
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self, on_ready: Callable[["TritonServer"], None] | None = None) -> None:
        """Start, run until SIGINT, SIGTERM or SIGHUP, stop cleanly; ServingError if tritonserver dies on its own."""
        stop = threading.Event()
        # SIGHUP too (a closed terminal or ssh session): tritonserver runs in its own session, so a `serve` killed
        # by a signal it does not handle leaves it running, holding the ports
        signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
        try:
            self.start()
            if on_ready:
                on_ready(self)
            while not stop.is_set() and self.running:
                stop.wait(0.5)
            died = not stop.is_set()
            code = self._proc.returncode if self._proc else None
            tail = self.log_tail() if died else ""
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if died:
            raise ServingError(f"tritonserver exited on its own with code {code}: {tail}")

    def endpoints(self) -> dict[str, str]:
        return {"http": f"http://{self.http_url}", "grpc": self.grpc_url, "metrics": self.metrics_url}
