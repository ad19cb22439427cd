"""Learned StyleGAN encoders: the IR-SE backbone, pSp and e4e, their checkpoints and their methods."""
