"""`python -m export <model> …`: train, version and publish SavedModels with the serving contract."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

SUBCOMMANDS = {
    "cifar10": ("CifarExportConfig", "the reference CIFAR-10 CNN", "Train the reference CIFAR-10 CNN and publish it."),
    "cifar100": ("Cifar100ExportConfig", "the same CNN on CIFAR-100 (fine or coarse labels)",
                 "Train the reference CNN on CIFAR-100 (the reference project's comparison run) and publish it."),
    "caltechown": ("CaltechownConfig", "Caltech101 + own classes by transfer learning",
                   "Transfer learning on Caltech101 class folders plus your own photo classes."),
    "imagenet": ("ImagenetExportConfig", "a pretrained ImageNet classifier as is",
                 "Export a Keras Applications ImageNet classifier under the serving contract."),
}
# The module of export.exporters that runs each command (imported only once the arguments parsed).
EXPORTERS = {"cifar10": "cifar", "cifar100": "cifar", "caltechown": "caltechown", "imagenet": "imagenet"}


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command's options, from the settings dataclasses (no TensorFlow import)."""
    from export import settings

    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Train an image classifier and publish it as models/<name>/<version>/ (atomic, gated).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and TensorFlow's own log lines")
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, (config, help_text, description) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging and TensorFlow's own log lines")
        settings.add_options(p, getattr(settings, config))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run one exporter, print one JSON line; exit 0 published, 1 gate failed, 2 bad input."""
    args = build_parser().parse_args(argv)
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow(args.verbose)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from export import settings
    from export.data.image_data import DataError
    from export.publish.publishing import GateFailed
    from export.publish.repository import RepositoryError

    try:
        config = settings.from_args(getattr(settings, SUBCOMMANDS[args.model][0]), args)
    except ValueError as e:  # a setting out of range (the configs check themselves)
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        exporter = importlib.import_module(f"export.exporters.{EXPORTERS[args.model]}")
        summary = exporter.run(config)
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
