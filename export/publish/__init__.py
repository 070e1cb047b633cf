"""From a trained model to a published version: signatures, warmup, the validation gate, atomic publishing."""
