from tests.serving.conftest import half_plus_two_source  # noqa: F401  (shared fixture)
