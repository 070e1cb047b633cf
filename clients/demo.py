"""The whole path in one command (`make demo`): export CIFAR-10 → start the local model server → call it with the
gRPC and REST clients on real test images → print labelled predictions → stop the server cleanly.

    python -m clients.demo --data ../shared/datasets          # local data (offline)
    python -m clients.demo --data keras                        # download through keras.datasets
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoConfig:
    data: str
    epochs: int
    limit: int | None
    model_base_path: Path
    cache_dir: Path
    retrain: bool
    images_per_class: int


def say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_if_needed(cfg: DemoConfig) -> Path:
    """Reuse the newest exported version unless --retrain or there is none; else run `python -m export`."""
    from serving.lifecycle.model_paths import list_versions

    model_dir = cfg.model_base_path / "cifar10"
    versions = list_versions(model_dir)
    if versions and not cfg.retrain:
        say(f"reusing {model_dir / str(versions[-1])} (pass --retrain to train a new version)")
        return model_dir
    say(f"exporting CIFAR-10 from {cfg.data}: {cfg.epochs} epoch(s)" + (f", {cfg.limit} images" if cfg.limit else ""))
    cmd = [sys.executable, "-m", "export", "cifar10", "--data", cfg.data, "--epochs", str(cfg.epochs),
           "--model-base-path", str(cfg.model_base_path), "--cache-dir", str(cfg.cache_dir), "--force"]
    if cfg.limit:
        cmd += ["--limit", str(cfg.limit)]
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"export failed (exit {result.returncode})")
    return model_dir


def demo_images(cfg: DemoConfig) -> list[tuple[Path, str]]:
    """(file, true class) for a few real test images of every class."""
    from export.data import cifar10_data

    candidates = [Path(cfg.data) / "test", cfg.cache_dir / "cifar10-jpg" / "test"]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:  # pickles or keras: write a few test images as PNG
        import numpy as np
        from PIL import Image

        splits = cifar10_data.load(cfg.data, cfg.cache_dir)
        folder = cfg.cache_dir / "demo-images" / "test"
        for c, name in enumerate(cifar10_data.CLASS_NAMES):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(splits.test.labels == c)[: cfg.images_per_class]:
                Image.fromarray(splits.test.images[i]).save(folder / name / f"{i:05d}.png")
    out = []
    for name in cifar10_data.CLASS_NAMES:
        files = sorted(p for p in (folder / name).iterdir() if p.is_file())[: cfg.images_per_class]
        out.extend((f, name) for f in files)
    return out


def run(cfg: DemoConfig) -> int:
    """Export, serve, query, stop."""
    from clients.decode import format_table
    from clients.grpc_transport import GrpcClient
    from clients.preprocess import prepare
    from clients.rest_transport import RestClient

    model_dir = export_if_needed(cfg).resolve()
    grpc_port, rest_port = free_port(), free_port()
    say(f"starting the local model server: gRPC 127.0.0.1:{grpc_port}, REST http://127.0.0.1:{rest_port}")
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=cifar10", f"--model_base_path={model_dir}"],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    grpc_client = GrpcClient(f"127.0.0.1:{grpc_port}", "cifar10", timeout=30)
    rest_client = RestClient(f"http://127.0.0.1:{rest_port}", "cifar10", timeout=30)
    try:
        grpc_client.wait_until_available(180)
        info = grpc_client.model_info()
        size = info.input_size()
        say(f"cifar10 version {info.version} is AVAILABLE; input size {size} read from the model's metadata")
        images = demo_images(cfg)
        prepared = [prepare(f.read_bytes(), f"{f.name} (true: {true})", size) for f, true in images]
        results = {}
        for title, client, mode in (("gRPC, encoded JPEG bytes (serving_default)", grpc_client, "bytes"),
                                    ("REST, pixels resized locally (predict_pixels)", rest_client, "pixels"),
                                    ("REST, Classify API (classify)", rest_client, "classify")):
            preds = client.predict_all(prepared, batch_size=16, mode=mode, top_k=3)
            results[mode] = preds
            say(title)
            print(format_table(preds[: min(len(preds), 6)]))
            if len(preds) > 6:
                print(f"  … {len(preds) - 6} more")
        truth = [true for _, true in images]
        correct = sum(p.top[0].label == t for p, t in zip(results["bytes"], truth, strict=True))
        same = sum(a.top[0].label == b.top[0].label for a, b in zip(results["bytes"], results["pixels"], strict=True))
        say(f"top-1 correct on these {len(truth)} test images: {correct}; gRPC bytes vs REST pixels agree on {same}")
        summary = {"model": "cifar10", "version": info.version, "images": len(truth), "top1_correct": correct,
                   "bytes_pixels_agreement": same}
    finally:
        grpc_client.close()
        rest_client.close()
        say("stopping the server (SIGTERM)")
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
    print(f"server exited with {code}")
    print(json.dumps(summary))
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Parse flags and run the demo."""
    p = argparse.ArgumentParser(prog="python -m clients.demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="../shared/datasets",
                   help="CIFAR-10 source for `python -m export cifar10` (a path, or 'keras' to download)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs when a model is exported")
    p.add_argument("--limit", type=int, default=None, help="train on a stratified subset of N images (faster)")
    p.add_argument("--model-base-path", type=Path, default=Path("models"))
    p.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    p.add_argument("--retrain", action="store_true", help="export a new version even if one exists")
    p.add_argument("--images-per-class", type=int, default=2)
    a = p.parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    return run(DemoConfig(a.data, a.epochs, a.limit, a.model_base_path, a.cache_dir, a.retrain, a.images_per_class))


if __name__ == "__main__":
    sys.exit(main())
