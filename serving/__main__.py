"""`python -m serving`: a local stand-in for tensorflow_model_server with the same flags."""

from __future__ import annotations

import logging
import sys

VERSION = "tfserving-pipeline local model server (TF Serving 2.21 REST/gRPC API)"


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run until SIGTERM, exit 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serving.flags import parse_flags

    options = parse_flags(argv)
    if options.version:
        print(VERSION)
        return 0
    from serving.tf_logging import quiet_tensorflow

    quiet_tensorflow()
    from serving.errors import ServingError
    from serving.server import ModelServer

    try:
        ModelServer(options).run()
    except ServingError as e:  # what tensorflow_model_server prints (to stdout) and its exit status (-1)
        print(f"Failed to start server. Error: {e.code}: {e.message}", flush=True)
        return 255
    except OSError as e:  # a port in use, an unreadable file
        print(f"Failed to start server. Error: {e}", flush=True)
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main())
