"""Training e4e and pSp: options, losses, the latent discriminator, Ranger, the loop, DDP helpers."""
