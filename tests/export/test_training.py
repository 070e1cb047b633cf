import numpy as np

from export import cifar10_data
from export.training import input_pipeline


def test_pipeline_batches_mix_classes_even_when_data_is_sorted_by_class():
    data = cifar10_data.synthetic(per_class_train=200).train  # 2,000 images, sorted by class
    assert np.all(np.diff(data.labels) >= 0)
    images, labels = next(iter(input_pipeline(data, batch_size=64, shuffle=True, seed=0)))
    assert images.dtype.name == "float32" and images.shape == (64, 32, 32, 3)
    assert float(images.numpy().max()) > 1.0  # 0..255: scaling is the model's job
    counts = np.bincount(labels.numpy(), minlength=10)
    assert (counts > 0).sum() == 10 and counts.max() < 20


def test_pipeline_without_shuffle_keeps_order_and_covers_everything():
    data = cifar10_data.synthetic(per_class_train=5).train
    labels = np.concatenate([lab.numpy() for _, lab in input_pipeline(data, 16, shuffle=False, seed=0)])
    assert np.array_equal(labels, data.labels)
