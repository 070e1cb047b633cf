"""`python -m clients.grpc_client`: the predict command over gRPC (`python -m clients predict
--protocol grpc`); the client class is `clients.grpc_transport.GrpcClient`."""

from __future__ import annotations

import sys

from clients.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """Parse the predict command's options (before TensorFlow loads) and run it over grpc."""
    return cli_main(["predict", "--protocol", "grpc", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
