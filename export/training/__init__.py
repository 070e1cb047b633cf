"""Training and evaluation: the fit loop, precision policies, accuracy and confusion matrices."""
