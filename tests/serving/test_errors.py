from serving.errors import HTTP_STATUS, Internal, InvalidArgument, NotFound, Unavailable, error_for_code


def test_codes_map_to_classes_and_tf_servings_http_statuses():
    assert isinstance(error_for_code("NOT_FOUND", "m"), NotFound) and error_for_code(5, "m").http_status == 404
    assert isinstance(error_for_code(3, "bad"), InvalidArgument) and error_for_code(3, "bad").message == "bad"
    assert error_for_code("UNAVAILABLE", "full").http_status == 503 and isinstance(error_for_code(14, ""), Unavailable)
    assert error_for_code(999, "?").code == "UNKNOWN"
    # Codes without a subclass keep their code (and so their HTTP status) instead of becoming INTERNAL.
    assert error_for_code(11, "end").code == "OUT_OF_RANGE" and error_for_code(11, "end").http_status == 400
    assert isinstance(error_for_code("INTERNAL", "x"), Internal)
    assert HTTP_STATUS["FAILED_PRECONDITION"] == 400 and HTTP_STATUS["RESOURCE_EXHAUSTED"] == 429
