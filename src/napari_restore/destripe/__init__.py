"""Destriping (ResCBAM U-Net, Wei et al. 2022): training data, training and inference."""
