"""TF Serving's version-directory rules (serving.lifecycle.model_paths): what is a version, which one serves."""

from serving.lifecycle.model_paths import list_versions, newest_version_path, parse_version, version_dirs


def test_parse_version_reads_names_as_absl_simple_atoi_does():
    # TF Serving's own test model lives in 00000123/ and is served as version 123.
    cases = {"0": 0, "17": 17, "00000123": 123, "+5": 5, "-1": -1, " 7\t": 7, str(2**63 - 1): 2**63 - 1}
    for name, version in cases.items():
        assert parse_version(name) == version, name
    for bad in ("1.0", "v1", ".tmp-export-1", "", "1a", "1_000", "0x10", "+", str(2**63), "١٢"):
        assert parse_version(bad) is None, bad


def test_list_versions_ignores_hidden_and_non_numeric(tmp_path):
    for d in ("1", "10", "2", ".tmp-export-abc", "notes", "007"):
        (tmp_path / d).mkdir()
    (tmp_path / "3").write_text("a file: TF Serving aspires it too (and fails to load it)")
    assert list_versions(tmp_path) == [1, 2, 3, 7, 10]
    assert list_versions(tmp_path / "missing") == []


def test_two_spellings_of_one_version_load_the_later_name(tmp_path, caplog):
    for d in ("7", "007", "0007"):
        (tmp_path / d).mkdir()
    assert version_dirs(tmp_path) == {7: tmp_path / "7"}  # sorted: "0007" < "007" < "7"
    assert "Duplicate version directories detected. Version 7 will be loaded from 7, 007 will be ignored." \
        in caplog.text


def test_newest_version_path_picks_the_highest_version_and_leaves_other_paths_alone(tmp_path):
    for version in ("1", "10", "2", "notes"):
        (tmp_path / "m" / version).mkdir(parents=True)
    assert newest_version_path(tmp_path / "m") == tmp_path / "m" / "10"
    assert newest_version_path(tmp_path / "m" / "2") == tmp_path / "m" / "2"  # a version: no versions below
    assert newest_version_path(tmp_path / "missing") == tmp_path / "missing"
