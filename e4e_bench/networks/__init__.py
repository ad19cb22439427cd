"""The networks the harness runs: the StyleGAN2 generator, LPIPS and MoCo."""
