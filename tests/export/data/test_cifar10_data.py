import shutil
import tarfile

import numpy as np
import pytest

from export.data import cifar10_data as cd
from export.data.image_data import DataError, LabeledImages, stratified_limit, stratified_split


def _assert_cifar(data: LabeledImages):
    assert data.images.dtype == np.uint8 and data.images.shape[1:] == (32, 32, 3)
    assert data.labels.dtype == np.int64 and data.class_names == cd.CLASS_NAMES
    ds = data.dataset()
    assert ds.class_names == cd.CLASS_NAMES
    img, label = next(iter(ds))
    assert img.dtype.name == "uint8" and label.dtype.name == "int64"


def test_synthetic_is_deterministic_and_balanced():
    a, b = cd.synthetic(), cd.synthetic()
    _assert_cifar(a.train)
    assert np.array_equal(a.train.images, b.train.images)
    assert set(a.train.class_counts().values()) == {40}


def test_pickle_directory_and_tarball_round_trip(tmp_path):
    src = cd.synthetic(per_class_train=6, per_class_test=2)
    pickles = cd.write_pickles(tmp_path / cd.PICKLE_DIR, src)
    for loaded in (cd.load(str(tmp_path), tmp_path), cd.load(str(pickles), tmp_path)):
        _assert_cifar(loaded.train)
        assert np.array_equal(loaded.train.images, src.train.images)
        assert np.array_equal(loaded.test.labels, src.test.labels)
    tarball = cd.write_pickle_tarball(tmp_path / cd.PICKLE_TARBALL, pickles)
    shutil.rmtree(pickles)
    from_tar = cd.load(str(tarball), tmp_path)
    assert np.array_equal(from_tar.train.images, src.train.images)
    assert from_tar.source.startswith("python pickles")


def test_pickle_channel_major_rows_become_hwc(tmp_path):
    src = cd.synthetic(per_class_train=1, per_class_test=1)
    img = src.train.images[3]
    cd.write_pickles(tmp_path / "p", src, batches=1)
    import pickle

    row = pickle.loads((tmp_path / "p" / "data_batch_1").read_bytes())[b"data"][3]
    assert np.array_equal(row[:1024].reshape(32, 32), img[..., 0])  # red plane first
    assert np.array_equal(row[2048:].reshape(32, 32), img[..., 2])


def test_bad_pickle_is_a_clear_error(tmp_path):
    d = tmp_path / cd.PICKLE_DIR
    cd.write_pickles(d, cd.synthetic(per_class_train=1, per_class_test=1))
    (d / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2: not a CIFAR python-format pickle"):
        cd.load(str(d), tmp_path)


def _folders_from_real(tmp_path, cifar_test_dir, per_class=3):
    root = tmp_path / "folders"
    for split in ("train", "test"):
        for cls in cd.CLASS_NAMES:
            (root / split / cls).mkdir(parents=True)
            for f in sorted((cifar_test_dir / "test" / cls).glob("*.jpg"))[:per_class]:
                shutil.copy(f, root / split / cls / f.name)
    return root


def test_image_folders_with_real_jpegs(tmp_path, cifar_test_dir):
    root = _folders_from_real(tmp_path, cifar_test_dir)
    (root / "train" / "cat" / "README.txt").write_text("not an image: ignored")
    splits = cd.load(str(root), tmp_path)
    _assert_cifar(splits.train)
    assert len(splits.train) == 30 and splits.train.class_counts()["cat"] == 3


def test_corrupt_images_are_skipped_and_counted_or_fatal_with_strict(tmp_path, cifar_test_dir):
    root = _folders_from_real(tmp_path, cifar_test_dir)
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated garbage")
    (root / "train" / "cat" / "empty.png").write_bytes(b"")
    splits = cd.load(str(root), tmp_path)
    assert len(splits.train) == 30
    assert sorted(p.rsplit("/", 1)[1] for p in splits.train.skipped) == ["broken.jpg", "empty.png"]
    with pytest.raises(DataError, match=r"corrupt or unreadable image .*\(2 in all; --strict\)"):
        cd.load(str(root), tmp_path, strict=True)


def test_unknown_and_missing_class_folders(tmp_path, cifar_test_dir):
    root = _folders_from_real(tmp_path, cifar_test_dir, per_class=1)
    (root / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"unknown class folder\(s\) \['zebra'\]"):
        cd.load(str(root), tmp_path)
    shutil.rmtree(root / "train" / "zebra")
    shutil.rmtree(root / "test" / "frog")
    with pytest.raises(DataError, match=r"\['frog'\] missing"):
        cd.load(str(root), tmp_path)


def test_missing_and_empty_data_paths(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        cd.load(str(tmp_path / "nowhere"), tmp_path)
    with pytest.raises(DataError, match="holds no CIFAR-10 data"):
        cd.load(str(tmp_path), tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="class folder"):
        cd.load(str(tmp_path), tmp_path)


def test_shared_tarballs_are_extracted_once(tmp_path, cifar_test_dir):
    # Build a miniature copy of the shared layout from real images.
    root = _folders_from_real(tmp_path, cifar_test_dir, per_class=2)
    shared = tmp_path / "shared"
    shared.mkdir()
    for name, split in zip(cd.SHARED_TARBALLS, ("train", "test"), strict=True):
        with tarfile.open(shared / name, "w:gz") as tar:
            tar.add(root / split, arcname=split)
    cache = tmp_path / "cache"
    first = cd.load(str(shared), cache)
    assert len(first.train) == 20 and (cache / "cifar10-jpg" / ".complete").exists()
    (shared / cd.SHARED_TARBALLS[0]).unlink()  # second load reuses the extraction
    (shared / cd.SHARED_TARBALLS[0]).write_bytes(b"")
    assert len(cd.load(str(shared), cache).train) == 20


def test_limit_is_stratified_and_seeded():
    data = cd.synthetic(per_class_train=40).train
    sub = stratified_limit(data, 100, seed=1)
    assert len(sub) == 100 and set(sub.class_counts().values()) == {10}
    assert np.array_equal(sub.images, stratified_limit(data, 100, seed=1).images)
    assert stratified_limit(data, None, 1) is data


def test_val_split_is_stratified_and_keeps_every_class():
    data = cd.synthetic(per_class_train=10).train
    train, val = stratified_split(data, 0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert set(val.class_counts().values()) == {2}
    tiny = data.subset(np.arange(0, 100, 10))  # one image per class
    train, val = stratified_split(tiny, 0.5, seed=3)
    assert len(val) == 0 and set(train.class_counts().values()) == {1}


def test_the_official_python_format_as_documented_loads_pixel_for_pixel(tmp_path):
    from tests.export.data import official_pickles as official

    batches = [official.images_and_labels(20, 10, seed) for seed in range(5)]
    test = official.images_and_labels(10, 10, 99)
    folder = official.write_cifar10(tmp_path / "dir", batches, test, cd.CLASS_NAMES)
    archive = official.tarball(tmp_path / "cifar-10-python.tar.gz", folder)
    for data in (str(folder), str(folder.parent), str(archive)):
        splits = cd.load(data, tmp_path / "cache")
        np.testing.assert_array_equal(splits.train.images, np.concatenate([b[0] for b in batches]))
        assert splits.train.labels.tolist() == [label for b in batches for label in b[1]]
        np.testing.assert_array_equal(splits.test.images, test[0])
        assert splits.test.labels.tolist() == test[1] and splits.train.class_names == cd.CLASS_NAMES
