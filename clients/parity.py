"""Parity check: does the served model see images exactly as training did?

    python -m clients.parity --server localhost:8500 --model cifar10 ../test-images/

Each image goes through the served bytes path (`serving_default`, decoded in the graph) and the pixels path
(decoded and resized locally with Pillow, `predict_pixels`); both are compared with in-process predictions of the
same exported SavedModel on the same files (decoded with TensorFlow, as the training data was). Prints top-1
agreement and max/mean |Δ probability| per path; exits 1 when an agreement is below --min-agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clients.cli import add_connection_args, collect_images, make_client
from clients.preprocess import ImageError, prepare


@dataclass(frozen=True)
class ParityConfig:
    protocol: str
    server: str | None
    model: str
    version: int | None
    label: str | None
    timeout: float
    wait: float
    saved_model: Path | None
    model_base_path: Path
    batch_size: int
    min_agreement: float
    images: tuple[str, ...]


def compare(reference: np.ndarray, served: np.ndarray) -> dict:
    """Top-1 agreement and |Δ probability| statistics of one path against the reference."""
    delta = np.abs(reference - served)
    return {
        "images": int(len(reference)),
        "top1_agreement": float((reference.argmax(1) == served.argmax(1)).mean()) if len(reference) else 0.0,
        "max_abs_diff": float(delta.max()) if delta.size else 0.0,
        "mean_abs_diff": float(delta.mean()) if delta.size else 0.0,
    }


def run(cfg: ParityConfig) -> dict:
    """Send every image both ways and compare with the in-process SavedModel."""
    import tensorflow as tf

    client = make_client(cfg.protocol, cfg.server, cfg.model, cfg.version, cfg.label, cfg.timeout)
    try:
        if cfg.wait:
            client.wait_until_available(cfg.wait)
        info = client.model_info()
        size = info.input_size()
        path = cfg.saved_model or cfg.model_base_path / cfg.model / str(info.version)
        reference_fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        prepared, skipped = [], []
        for name, data in collect_images(cfg.images):
            try:
                prepared.append((data, prepare(data, name, size)))
            except ImageError as e:
                skipped.append(str(e))
        ref, by_bytes, by_pixels = [], [], []
        for i in range(0, len(prepared), cfg.batch_size):
            chunk = prepared[i:i + cfg.batch_size]
            # In-process: TF decoding of the file itself (or of the lossless re-encode the client had to make).
            ref_input = [p.encoded for _, p in chunk]
            ref.append(reference_fn(image_bytes=tf.constant(ref_input))["probabilities"].numpy())
            out, _ = client.raw_outputs([p.encoded for _, p in chunk], "serving_default")
            by_bytes.append(np.asarray(out["probabilities"], np.float64))
            out, _ = client.raw_outputs(np.stack([p.pixels for _, p in chunk]), "predict_pixels")
            by_pixels.append(np.asarray(out["probabilities"], np.float64))
    finally:
        client.close()
    reference = np.concatenate(ref) if ref else np.zeros((0, 1))
    result = {
        "model": cfg.model, "version": info.version, "saved_model": str(path), "protocol": cfg.protocol,
        "skipped": skipped,
        "bytes_path": compare(reference, np.concatenate(by_bytes) if by_bytes else reference),
        "pixels_path": compare(reference, np.concatenate(by_pixels) if by_pixels else reference),
    }
    result["passed"] = all(result[k]["top1_agreement"] >= cfg.min_agreement for k in ("bytes_path", "pixels_path"))
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print a table and one JSON line."""
    p = argparse.ArgumentParser(prog="python -m clients.parity", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    add_connection_args(p)
    p.add_argument("--saved-model", type=Path, default=None,
                   help="the exported version to compare with (default <model-base-path>/<model>/<served version>)")
    p.add_argument("--model-base-path", type=Path, default=Path("models"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--min-agreement", type=float, default=0.995, help="target top-1 agreement (default 0.995)")
    p.add_argument("images", nargs="+", help="image files or directories (recursive)")
    a = p.parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    cfg = ParityConfig(a.protocol, a.server, a.model, a.version, a.label, a.timeout, a.wait, a.saved_model,
                       a.model_base_path, a.batch_size, a.min_agreement, tuple(a.images))
    from clients.base import ClientError

    try:
        r = run(cfg)
    except ClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if type(e) is ClientError else e.exit_code
    print(f"{cfg.model} v{r['version']} over {cfg.protocol}: {r['bytes_path']['images']} images"
          f" ({len(r['skipped'])} unreadable, skipped)")
    print(f"{'path':<14}{'top-1 agreement':>17}{'max |Δp|':>12}{'mean |Δp|':>12}")
    for key, label in (("bytes_path", "bytes"), ("pixels_path", "pixels")):
        m = r[key]
        print(f"{label:<14}{100 * m['top1_agreement']:>16.2f}%{m['max_abs_diff']:>12.2e}{m['mean_abs_diff']:>12.2e}")
    print(json.dumps(r))
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
