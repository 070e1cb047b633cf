"""`python -m export <model> …`: train, version and publish SavedModels with the serving contract."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run one exporter, print one JSON line; exit 0 published, 1 gate failed, 2 bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Train an image classifier and publish it as models/<name>/<version>/ (atomic, gated).",
    )
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    from export import cifar10_export

    p = sub.add_parser("cifar10", help="the reference CIFAR-10 CNN",
                       description="Train the reference CIFAR-10 CNN and publish it.")
    cifar10_export.add_arguments(p)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from export.gate import GatePolicy  # noqa: F401  (keeps TF import after logging setup)
    from export.image_data import DataError
    from export.publishing import GateFailed
    from export.repository import RepositoryError

    try:
        summary = cifar10_export.run(cifar10_export.config_from_args(args))
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
