"""`python -m clients predict …` (also `python -m clients.grpc_client` / `python -m clients.rest_client`).

Exit codes: 0 all images predicted; 2 bad usage or an unreadable image; 3 the server answered with an error
(unknown model/version/label, invalid input, …); 4 cannot connect, server unavailable after retries, or timeout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from clients.base import MODES, ClientError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}
DEFAULT_SERVER = {"grpc": "localhost:8500", "rest": "http://localhost:8501"}


@dataclass(frozen=True)
class PredictConfig:
    """Parsed `predict` options."""

    protocol: str
    server: str
    model: str
    version: int | None
    label: str | None
    signature: str | None
    mode: str
    top_k: int
    timeout: float
    wait: float
    json: bool
    batch_size: int
    max_pixels: int
    labels_file: Path | None
    images: tuple[str, ...]


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """--protocol, --server, --model, --version/--label, --timeout, --wait."""
    p.add_argument("--protocol", choices=("grpc", "rest"), default="grpc", help="transport (default grpc)")
    p.add_argument("--server", default=None,
                   help="host:port for gRPC (default localhost:8500) or URL for REST (default http://localhost:8501)")
    p.add_argument("--model", required=True, help="model name, e.g. cifar10")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--version", type=int, default=None, help="a specific version (default: the latest)")
    v.add_argument("--label", default=None, help="a version label such as stable or canary")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request deadline in seconds (default 10)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to SECONDS for the model to be AVAILABLE")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m clients", description="Call served image classifiers.",
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("predict", help="classify images", description="Classify images with a served model.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_connection_args(p)
    p.add_argument("--signature", default=None,
                   help="signature (default per mode: serving_default, predict_pixels, classify)")
    p.add_argument("--mode", choices=MODES, default="bytes",
                   help="bytes: send encoded images; pixels: resize locally, send float pixels; classify: Classify API")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--batch-size", type=int, default=8, help="images per request")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (decompression bombs)")
    p.add_argument("--labels", type=Path, default=None, dest="labels_file",
                   help="label file (one per line) for models that only output probabilities")
    p.add_argument("images", nargs="+", help="image files, directories (recursive) or - for standard input")
    p.add_argument("-v", "--verbose", action="store_true")
    return parser


def collect_images(items: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(name, bytes) for files, directories (recursive, image suffixes) and '-' (stdin)."""
    out = []
    for item in items:
        if item == "-":
            out.append(("<stdin>", sys.stdin.buffer.read()))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ClientError(f"{item}: no images in this directory")
        elif path.is_file():
            files = [path]
        else:
            raise ClientError(f"{item}: no such file or directory")
        for f in files:
            try:
                out.append((str(f), f.read_bytes()))
            except OSError as e:
                raise ClientError(f"{f}: cannot read ({e.strerror})") from e
    return out


def make_client(protocol: str, server: str | None, model: str, version=None, label=None, timeout=10.0):
    """A GrpcClient or RestClient."""
    if protocol == "grpc":
        from clients.grpc_transport import GrpcClient

        return GrpcClient(server or DEFAULT_SERVER["grpc"], model, version, label, timeout)
    from clients.rest_transport import RestClient

    return RestClient(server or DEFAULT_SERVER["rest"], model, version, label, timeout)


def run_predict(cfg: PredictConfig) -> int:
    """Prepare, send, print."""
    from clients.decode import format_table
    from clients.preprocess import ImageError, prepare

    client = make_client(cfg.protocol, cfg.server, cfg.model, cfg.version, cfg.label, cfg.timeout)
    try:
        if cfg.wait:
            client.wait_until_available(cfg.wait)
        size = client.model_info().input_size() if cfg.mode == "pixels" else None
        if cfg.mode == "pixels" and size is None:
            raise ClientError(f"model {cfg.model} has no [N, H, W, 3] float input to size pixels for")
        labels = cfg.labels_file.read_text().splitlines() if cfg.labels_file else None
        prepared = []
        for name, data in collect_images(cfg.images):
            try:
                prepared.append(prepare(data, name, size, cfg.max_pixels, want_pixels=cfg.mode == "pixels"))
            except ImageError as e:
                raise ClientError(str(e)) from e
        for i in range(0, len(prepared), cfg.batch_size):
            preds = client.predict(prepared[i:i + cfg.batch_size], mode=cfg.mode, signature=cfg.signature,
                                   top_k=cfg.top_k, labels=labels)
            print("\n".join(p.to_json() for p in preds) if cfg.json else format_table(preds), flush=True)
    finally:
        client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    if args.batch_size < 1 or args.top_k < 1:
        print("error: --batch-size and --top-k must be at least 1", file=sys.stderr)
        return 2
    cfg = PredictConfig(args.protocol, args.server, args.model, args.version, args.label, args.signature, args.mode,
                        args.top_k, args.timeout, args.wait, args.json, args.batch_size, args.max_pixels,
                        args.labels_file, tuple(args.images))
    try:
        return run_predict(cfg)
    except ClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if type(e) is ClientError else e.exit_code


if __name__ == "__main__":
    sys.exit(main())
