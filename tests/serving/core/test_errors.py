import grpc

from serving.errors import HTTP_STATUS, Internal, InvalidArgument, NotFound, Unavailable, error_for_code


def test_codes_map_to_classes_and_tf_servings_http_statuses():
    assert isinstance(error_for_code("NOT_FOUND", "m"), NotFound)
    assert error_for_code("NOT_FOUND", "m").http_status == 404
    bad = error_for_code("INVALID_ARGUMENT", "bad")
    assert isinstance(bad, InvalidArgument) and bad.message == "bad"
    assert error_for_code("UNAVAILABLE", "full").http_status == 503
    assert isinstance(error_for_code("UNAVAILABLE", ""), Unavailable)
    assert error_for_code("NO_SUCH_CODE", "?").code == "UNKNOWN"
    # Codes without a subclass keep their code (and so their HTTP status) instead of becoming INTERNAL.
    assert error_for_code("OUT_OF_RANGE", "end").code == "OUT_OF_RANGE"
    assert error_for_code("OUT_OF_RANGE", "end").http_status == 400
    assert isinstance(error_for_code("INTERNAL", "x"), Internal)
    assert HTTP_STATUS["FAILED_PRECONDITION"] == 400 and HTTP_STATUS["RESOURCE_EXHAUSTED"] == 429


def test_every_code_name_is_a_grpc_status_code():
    # The gRPC layer maps a code by name (grpc.StatusCode[code]); the HTTP table must not invent one.
    assert {c.name for c in grpc.StatusCode} == set(HTTP_STATUS)
