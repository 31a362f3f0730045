"""Self-supervised denoising (SRDTrans, Li et al. 2023): sampling, training and inference."""
