"""`python -m clients.bench.soak_swaps SAVED_MODEL`: does the local server's memory stay flat over hot swaps?

Starts `python -m serving` (batching on, 1 s file-system polls) on a scratch copy of the version, then publishes
SWAPS new versions one after the other (atomic rename, as the exporter does) under light REST traffic, waiting
for each to be AVAILABLE and the previous one to unload. Prints the server's RSS after each swap and the growth
per swap; exit 0 when every request succeeded. A pod that receives a new model every hour must not grow.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BATCHING_CONFIG = ROOT / "k8s" / "base" / "config" / "batching.config"  # the production batching settings

@dataclass(frozen=True)
class SoakConfig:
    """What to run."""

    saved_model: Path
    image: Path
    swaps: int = 8
    port: int = 8711
    settle_s: float = 3.0
    grpc_port: int = 0


def parse_args(argv: list[str] | None) -> SoakConfig:
    """Flags into the config (no TensorFlow import)."""
    p = argparse.ArgumentParser(prog="python -m clients.bench.soak_swaps", description=__doc__.split("\n\n")[1])
    p.add_argument("saved_model", type=Path, help="a SavedModel version of the project's contract (copied)")
    p.add_argument("--image", type=Path, required=True, help="the JPEG the background traffic sends")
    p.add_argument("--swaps", type=int, default=8, help="versions to publish one after the other (default 8)")
    p.add_argument("--port", type=int, default=8711, help="REST port (default 8711)")
    p.add_argument("--grpc-port", type=int, default=0, help="gRPC port (default 0: the REST port + 1)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds of traffic after each swap (default 3)")
    a = p.parse_args(argv)
    if a.swaps < 2 or not (a.saved_model / "saved_model.pb").is_file():
        p.error("--swaps must be ≥ 2 and SAVED_MODEL must hold a saved_model.pb")
    return SoakConfig(a.saved_model, a.image, a.swaps, a.port, a.settle, a.grpc_port)


def rss_mib(pid: int) -> float:
    """A process's resident memory in MiB (from /proc, so Linux only)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def run(cfg: SoakConfig) -> dict:
    """Soak; returns RSS per swap, growth per swap and request counts."""
    import requests

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    base = work / "model"
    shutil.copytree(cfg.saved_model, base / "1")
    rest = f"http://127.0.0.1:{cfg.port}/v1/models/model"
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving", f"--rest_api_port={cfg.port}", f"--port={cfg.grpc_port or cfg.port + 1}",
             "--model_name=model", f"--model_base_path={base}", "--enable_batching",
             f"--batching_parameters_file={BATCHING_CONFIG}", "--file_system_poll_wait_seconds=1"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    counts = {"ok": 0, "failed": 0}
    failures: list[str] = []
    stop = threading.Event()
    body = {"instances": [{"b64": base64.b64encode(cfg.image.read_bytes()).decode()}]}

    def traffic() -> None:
        while not stop.is_set():
            try:
                r = requests.post(f"{rest}:predict", json=body, timeout=10)
                ok, why = r.ok, f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                ok, why = False, f"{type(e).__name__}: {e}"
            counts["ok" if ok else "failed"] += 1
            if not ok and len(failures) < 5:
                failures.append(why)
            stop.wait(0.02)

    def serving_only(version: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"server exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                status = requests.get(rest, timeout=5).json()["model_version_status"]
                states = {s["version"]: s["state"] for s in status}
                if states.get(str(version)) == "AVAILABLE" and all(
                        st == "END" for v, st in states.items() if v != str(version)):
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"version {version} did not become the only one served")

    rss = []
    worker = threading.Thread(target=traffic, daemon=True)
    try:
        serving_only(1)
        worker.start()
        stop.wait(cfg.settle_s)
        rss.append(rss_mib(server.pid))
        for version in range(2, cfg.swaps + 2):
            staged = base / f".incoming-{version}"
            shutil.copytree(cfg.saved_model, staged)
            staged.rename(base / str(version))
            serving_only(version)
            stop.wait(cfg.settle_s)
            rss.append(rss_mib(server.pid))
            print(f"swap {version - 1}/{cfg.swaps}: version {version} served, RSS {rss[-1]:.0f} MiB", flush=True)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)  # the last request finishes before the server is stopped
        server.terminate()
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    # The first swap warms allocator pools; growth is measured from after it.
    growth = (rss[-1] - rss[1]) / (len(rss) - 2)
    return {"rss_mib": [round(r) for r in rss], "growth_mib_per_swap": round(growth, 1), **counts,
            "failures": failures}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg = parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    result = run(cfg)
    print(f"RSS MiB after start and each swap: {result['rss_mib']}")
    print(f"growth per swap (from swap 1): {result['growth_mib_per_swap']} MiB; requests ok {result['ok']}, "
          f"failed {result['failed']}")
    for why in result["failures"]:
        print(f"  failed: {why}")
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
