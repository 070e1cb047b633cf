"""The Keras models: the CIFAR-10 CNN and its recipe, transfer-learning classifiers, test-time views."""
