from tests.serving.conftest import h2t_server, half_plus_two_source  # noqa: F401  (shared fixtures)
