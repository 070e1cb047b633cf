"""`python -m export <model> …`: train, version and publish SavedModels with the serving contract."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run one exporter, print one JSON line; exit 0 published, 1 gate failed, 2 bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Train an image classifier and publish it as models/<name>/<version>/ (atomic, gated).",
    )
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    from export import caltechown_export, cifar10_export
    from export.cli_common import add_publish_args
    from export.transfer_model import BACKBONES

    p = sub.add_parser("cifar10", help="the reference CIFAR-10 CNN",
                       description="Train the reference CIFAR-10 CNN and publish it.")
    cifar10_export.add_arguments(p)
    p = sub.add_parser("caltechown", help="Caltech101 + own classes by transfer learning",
                       description="Transfer learning on Caltech101 class folders plus your own photo classes.")
    caltechown_export.add_arguments(p)
    p = sub.add_parser("imagenet", help="a pretrained ImageNet classifier as is",
                       description="Export a Keras Applications ImageNet classifier under the serving contract.")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="resnet50")
    p.add_argument("--weights", default="imagenet", help="imagenet (downloads), a local weights file, or none")
    p.add_argument("--images", type=Path, default=None,
                   help="a folder of real images for the signature check and warmup (default: generated noise)")
    add_publish_args(p, name="imagenet")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from export import repository
    from export.cli_common import gate_policy
    from export.image_data import DataError
    from export.publishing import GateFailed
    from export.repository import RepositoryError

    try:
        if args.model == "cifar10":
            summary = cifar10_export.run(cifar10_export.config_from_args(args))
        elif args.model == "caltechown":
            summary = caltechown_export.run(caltechown_export.config_from_args(args))
        else:
            from export.publishing import PublishSettings

            model_dir = repository.make_model_path(args.model_base_path, args.name)
            version = repository.resolve_version(model_dir, args.version)
            summary = caltechown_export.run_imagenet(args.backbone, args.weights, args.images, PublishSettings(
                args.model_base_path, args.name, version, args.keep, gate_policy(args),
                renumber=str(args.version) == "auto"))
    except GateFailed as e:
        print(f"error: validation gate failed, nothing published: {e}", file=sys.stderr)
        print(json.dumps(e.summary))
        return 1
    except (DataError, RepositoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
