"""`python -m clients.bench.fuzz_apis` against a running server: counts every answer, fails on 5xx/INTERNAL."""

import pytest

from clients.bench.fuzz_apis import main

pytestmark = pytest.mark.e2e


def test_a_short_fuzz_run_sends_every_request_and_finds_no_server_error(h2t_server, capsys):
    import json

    code = main(["--rest", h2t_server.rest, "--grpc", h2t_server.grpc_target, "--model", "half_plus_two",
                 "--rest-requests", "300", "--grpc-requests", "100", "--seed", "3", "--oversized", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(result["rest"].values()) == 300 and sum(result["grpc"].values()) == 100
    assert (result["rest_5xx"], result["grpc_internal_or_unknown"], result["still_serving"]) == (0, 0, True), result
    assert code == 0
    # The oversized probes ran and were refused: a string for a float input, 61 Mi elements from one value.
    answers = [probe["answer"] for probe in result["oversized"]]
    assert len(answers) == 3 and all(a.startswith("INVALID_ARGUMENT") for a in answers[1:]), answers
