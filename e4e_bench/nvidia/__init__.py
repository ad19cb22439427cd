"""NVIDIA StyleGAN2 pickles (stylegan2-ada-pytorch and the TensorFlow release) read as data, never run.

`safe_unpickler` resolves an allow-list of globals only; `ada_pytorch` and `tf_release` turn what it
read into generator tensors under ada-pytorch's names; `convert` renames those to the rosinality
layout and builds this project's generator checkpoint.
"""
