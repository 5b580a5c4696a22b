"""Loopback load test of `floodwatch web`: map tiles per second, and the page's first paint with 100 acquisitions.

    python benchmarks/web_load.py [--records 100] [--size 1024] [--concurrency 16] [--requests 3000]
                                  [--seconds 20] [--no-browser]

Builds a store with the synthetic COGs the web tests use (tests/monitoring/web_helpers.py: flood mask,
probability and SAR scene, `--records` acquisitions), starts the real CLI (`floodwatch web`) in its own
process on 127.0.0.1, and drives it with httpx.AsyncClient from this one, measured side by side:

  1. /healthz            the framework's floor: the fastest the server answers anything
  2. cold tiles          every tile of zooms 11-15 over the raster, 3 layers x 2 records, each once
                         (each one read from the COGs and rendered by rio-tiler)
  3. warm tiles          random tiles among those phase 2 served (the in-process tile cache answers)
  4. the same /healthz and warm tiles from wrk (when installed), bounded by --seconds: a C client that
     leaves more of a small machine's CPU to the server than httpx does

Each phase stops at --requests requests or --seconds seconds, whichever comes first. Any answer other than
200 counts as an error. Then headless Chromium loads the page 3 times (a fresh profile each) and reports
first contentful paint and the time until the map, chart and alert log are drawn (body[data-ready]).
No data needed. Prints one table: per phase requests, req/s, latency percentiles, errors and the ratio to
/healthz measured in the same run. ~10 s with --records 3 --size 256 --requests 50 --seconds 3 --no-browser,
a few minutes with the defaults.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "monitoring"), str(ROOT)]
from tests.ports import free_port  # noqa: E402
from web_helpers import web_store  # noqa: E402

# piped to a file, rich would squeeze the table to 80 columns and cut the numbers short
console = Console() if sys.stdout.isatty() else Console(width=150)


def start_server(db: Path, outputs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "floodwatch", "web", "--db", str(db), "--outputs", str(outputs),
                             "--basemap", "offline", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # a shared, loaded machine can take minutes to import the stack
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"floodwatch web exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("floodwatch web did not start in 300 s")


def tile_urls(url: str, records: list[dict], bounds: list[float], zooms=range(11, 16)) -> list[str]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [t for z in zooms for t in tms.tiles(*bounds, zooms=[z])]
    return [f"{url}/tiles/{r['id']}/{layer}/{t.z}/{t.x}/{t.y}.png"
            for r in records for layer in ("flood", "probability", "sar") for t in tiles]


async def run_phase(urls, *, concurrency: int, max_requests: int, max_seconds: float, shuffle_forever: bool,
                    progress: Progress, label: str) -> dict:
    """Request `urls` (once each, or at random until the limits when shuffle_forever) from `concurrency`
    workers on one keep-alive connection pool."""
    latencies, errors, served, sent = [], [], [], 0
    total = max_requests if shuffle_forever else min(max_requests, len(urls))
    task = progress.add_task(label, total=total)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    queue = iter(urls)

    def next_url():
        nonlocal sent
        if sent >= total or time.perf_counter() - t0 > max_seconds:
            return None
        sent += 1
        return random.choice(urls) if shuffle_forever else next(queue, None)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker():
            while (u := next_url()) is not None:
                t = time.perf_counter()
                try:
                    r = await client.get(u)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {u}")
                    else:
                        served.append(u)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__} {u}")
                latencies.append(time.perf_counter() - t)
                progress.advance(task)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]  # noqa: E731
    return {"requests": len(lat), "wall_s": wall, "rps": len(lat) / wall, "p50_ms": q(0.50), "p95_ms": q(0.95),
            "p99_ms": q(0.99), "errors": errors, "served": served}


WRK_SCRIPT = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
"""


def wrk_phase(url: str, paths: list[str], *, concurrency: int, seconds: float, work: Path) -> dict | None:
    """The same random warm requests from wrk (C, 2 threads): a client that costs far less CPU than httpx,
    so that more of the 2 shared cores go to the server. Bounded by time."""
    if not shutil.which("wrk"):
        return None
    (work / "paths.txt").write_text("\n".join(paths) + "\n")
    (work / "random.lua").write_text(WRK_SCRIPT % (work / "paths.txt"))
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--timeout", "10s",
                          "--latency", "-s", str(work / "random.lua"), url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    import re

    def ms(text):
        v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    n = int(re.search(r"(\d+) requests in ([\d.]+)(ms|s)", out).group(1))
    wall = float(re.search(r"requests in ([\d.]+)s", out).group(1)) if re.search(r"requests in ([\d.]+)s,", out) \
        else seconds
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    bad = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = sum(map(int, m.groups())) if (m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) else 0
    return {"requests": n, "wall_s": wall, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms(pct["50"]), "p95_ms": float("nan"), "p99_ms": ms(pct["99"]),
            "errors": ["non-200"] * bad + ["socket"] * sock, "served": []}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_paint(url: str, runs: int = 3) -> list[dict] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        console.print("[yellow]no chromium/chromedriver: first paint not measured[/]")
        return None
    from selenium import webdriver
    from selenium.webdriver.support.ui import WebDriverWait

    out = []
    for _ in range(runs):
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        profile = tempfile.mkdtemp(prefix="fw-chromium-")
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--window-size=1366,768", f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
        try:
            d.get(url + "/")
            WebDriverWait(d, 60).until(lambda x: x.execute_script("return document.body.dataset.ready === '1'"))
            out.append(d.execute_script(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return {fcp_ms: p ? p.startTime : null, ready_ms: performance.now(),"
                " points: document.querySelectorAll('#chart circle.dot.flooded').length};"))
        finally:
            d.quit()
            shutil.rmtree(profile, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024, help="raster side in pixels (20 m)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=3000, help="at most this many requests per phase")
    ap.add_argument("--seconds", type=float, default=20.0, help="at most this long per phase")
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    for name, least in (("records", 1), ("size", 16), ("concurrency", 1), ("requests", 1)):
        if getattr(args, name) < least:
            ap.error(f"--{name}: {getattr(args, name)}; at least {least}")
    if not args.seconds > 0:
        ap.error(f"--seconds: {args.seconds}; must be above 0")

    work = Path(tempfile.mkdtemp(prefix="fw-webload-"))
    try:
        with console.status(f"writing {args.records} acquisitions ({args.size} px COGs)"):
            db, outputs, records = web_store(work, n=args.records, size=args.size)
        proc, url = start_server(db, outputs)
        try:
            bounds = httpx.get(f"{url}/api/records/{records[-1]['id']}", timeout=60).json()["bounds"]["flood"]
            cold_urls = tile_urls(url, [records[0], records[-1]], bounds)
            phases = {}
            with Progress(console=console, transient=True) as progress:
                def phase(name, urls, shuffle):
                    cpu0 = cpu_s(proc.pid)
                    phases[name] = asyncio.run(run_phase(urls, concurrency=args.concurrency,
                                                         max_requests=args.requests, max_seconds=args.seconds,
                                                         shuffle_forever=shuffle, progress=progress, label=name))
                    phases[name]["server_cpu_ms"] = 1000 * (cpu_s(proc.pid) - cpu0) / max(1, phases[name]["requests"])

                phase("/healthz", [url + "/healthz"], True)
                phase("cold tiles", cold_urls, False)
                # warm: the tiles the cold phase rendered (it may stop before it has asked for all of them)
                phase("warm tiles", phases["cold tiles"]["served"], True)
            for name, urls in (("/healthz (wrk)", ["/healthz"]),
                               ("warm tiles (wrk)", [u.removeprefix(url) for u in phases["cold tiles"]["served"]])):
                cpu0 = cpu_s(proc.pid)
                with console.status(name):
                    res = wrk_phase(url, urls, concurrency=args.concurrency, seconds=args.seconds, work=work)
                if res is not None:
                    res["server_cpu_ms"] = 1000 * (cpu_s(proc.pid) - cpu0) / max(1, res["requests"])
                    phases[name] = res
            paint = None if args.no_browser else first_paint(url)
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    t = Table("phase", "requests", "seconds", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "÷ /healthz",
              "server CPU ms/req",
              title=f"floodwatch web on 127.0.0.1, {args.concurrency} concurrent clients, "
                    f"{len(cold_urls)} distinct tiles", min_width=100)
    for name, p in phases.items():
        floor = phases["/healthz (wrk)" if "wrk" in name else "/healthz"]["rps"]
        t.add_row(name, str(p["requests"]), f"{p['wall_s']:.1f}", f"{p['rps']:.0f}", f"{p['p50_ms']:.1f}",
                  "–" if p["p95_ms"] != p["p95_ms"] else f"{p['p95_ms']:.1f}", f"{p['p99_ms']:.1f}",
                  str(len(p["errors"])), f"{p['rps'] / floor:.2f}",
                  f"{p['server_cpu_ms']:.2f}")
    console.print(t)
    for name, p in phases.items():
        for e in p["errors"][:5]:
            console.print(f"{name}: {e}", style="red", markup=False)
    if paint:
        fcp = [p["fcp_ms"] for p in paint if p["fcp_ms"] is not None]
        ready = [p["ready_ms"] for p in paint]
        console.print(f"page with {args.records} acquisitions ({paint[0]['points']} chart points), {len(paint)} "
                      f"loads: first contentful paint median {statistics.median(fcp):.0f} ms "
                      f"({', '.join(f'{v:.0f}' for v in fcp)}); map + chart + alerts drawn median "
                      f"{statistics.median(ready):.0f} ms ({', '.join(f'{v:.0f}' for v in ready)})")


if __name__ == "__main__":
    main()
