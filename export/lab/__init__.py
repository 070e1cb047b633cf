"""Experiments that measure recipes and models (`python -m export.lab.<tool>`); no product module imports them."""
