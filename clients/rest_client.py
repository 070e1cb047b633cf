"""`python -m clients.rest_client`: the predict command over REST (`python -m clients predict
--protocol rest`); the client class is `clients.rest_transport.RestClient`."""

from __future__ import annotations

import sys

from clients.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """Parse the predict command's options (before TensorFlow loads) and run it over rest."""
    return cli_main(["predict", "--protocol", "rest", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
