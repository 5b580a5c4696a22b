"""A throw-away PostgreSQL server for the store tests, and `store` / `db_url` fixtures that run each store test
on SQLite and on PostgreSQL.

One cluster per test session (initdb + start take seconds), one fresh database per test. The server listens on
127.0.0.1 only, on a free port, with its unix socket in the cluster folder and a password (so the URL carries
one, like a real deployment's). initdb refuses to run as root: as root the cluster belongs to the `postgres`
user that Debian's package creates, and every server command runs through `runuser -u postgres`.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

INSTALL_HINT = "Debian/Ubuntu: apt-get install postgresql"
PASSWORD = "s3cret-Pw"
USER = "floodwatch"


def _server_bin() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".") if x.isdigit()])
    return Path(versions[-1]).parent if versions else None


@dataclass
class PgServer:
    port: int
    bin: Path
    data: Path
    run_as: list[str]

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)


def _run(cmd: list, run_as: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # cwd: the server user may not be allowed into the current directory
    return subprocess.run(run_as + [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120)


def _start(tmp: Path, run_as: list[str], bin_dir: Path) -> PgServer:
    (tmp / "pw").write_text(PASSWORD + "\n")
    init = [bin_dir / "initdb", "-D", tmp / "data", "-U", USER, f"--pwfile={tmp / 'pw'}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--no-sync"]
    # an ICU default collation (not byte order) when the build has ICU, so the tests see locale-aware sorting
    proc = _run(init + ["--locale-provider=icu", "--icu-locale=en-US", "--locale=C.UTF-8"], run_as, tmp)
    if proc.returncode != 0:
        shutil.rmtree(tmp / "data", ignore_errors=True)
        proc = _run(init + ["--locale=C.UTF-8"], run_as, tmp)
    if proc.returncode != 0:
        pytest.fail(f"initdb failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    for _ in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={tmp} -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off")
        proc = _run([bin_dir / "pg_ctl", "-D", tmp / "data", "-l", tmp / "log", "-w", "-t", "60", "-o", opts,
                     "start"], run_as, tmp)
        if proc.returncode == 0:
            return PgServer(port, bin_dir, tmp / "data", run_as)
    log = (tmp / "log").read_text()[-2000:] if (tmp / "log").exists() else proc.stderr
    pytest.fail(f"PostgreSQL did not start: {log.strip()}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A running PostgreSQL server (skips when none is installed)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'floodwatch[monitor]'")
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL server not installed (no initdb/pg_ctl; {INSTALL_HINT})")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser (util-linux) is missing: cannot run initdb as 'postgres'")
        # pytest's tmp folders are private to root: the cluster gets its own folder, owned by postgres
        tmp = Path(tempfile.mkdtemp(prefix="fw-pg-"))
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    else:
        tmp, run_as = tmp_path_factory.mktemp("pg"), []
    try:
        server = _start(tmp, run_as, bin_dir)
        yield server
        _run([bin_dir / "pg_ctl", "-D", server.data, "-m", "fast", "-w", "stop"], run_as, tmp)
    finally:
        if run_as:
            shutil.rmtree(tmp, ignore_errors=True)


_db_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server (dropped afterwards)."""
    name = f"fw_test_{os.getpid()}_{next(_db_numbers)}"
    pg_server.admin(f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    pg_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same test on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "fw.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url):
    from floodwatch.monitoring.store import Store

    with Store(db_url) as s:
        yield s
