"""`python -m serving`: a local stand-in for tensorflow_model_server with the same flags."""

from __future__ import annotations

import logging
import os
import sys

VERSION = "tfserving-pipeline local model server (TF Serving 2.21 REST/gRPC API)"


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run until SIGTERM, exit 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.flags import parse_flags

    options = parse_flags(argv)
    if options.version:
        print(VERSION)
        return 0
    if not options.model_config_file and not options.model_base_path:
        print("error: give --model_config_file, or --model_name and --model_base_path", file=sys.stderr)
        return 2
    from serving.errors import ServingError
    from serving.server import ModelServer

    try:
        ModelServer(options).run()
    except ServingError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
