"""Labelled image data: CIFAR-10/100 and Caltech101 + own classes loaders, and the image decoding the models carry."""
