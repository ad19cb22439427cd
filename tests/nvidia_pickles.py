"""Tiny NVIDIA StyleGAN2 pickles, written by the standard pickler in the structure of the real files.

stylegan2-ada-pytorch (reference §2.5): a snapshot dict (`training_set_kwargs`, `G`, `D`, `G_ema`,
`augment_pipe`) whose networks are trees of nn.Modules of NVIDIA's class names; each pickles as
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type: 'class', version: 6,
module_src, class_name, state: the module's __dict__}, kwargs as `dnnlib.util.EasyDict`, tensors
as ordinary torch pickles. TF release (§2.3-2.4): a tuple (G, D, Gs) of
`dnnlib.tflib.network.Network`s whose state holds `static_kwargs`, `components`, `variables` as
(name, numpy array) pairs and `build_module_src`, with TF's layouts.

While these files are written (or loaded naively, to show a payload is live), NVIDIA's module
names are registered in sys.modules; the stand-ins behave like the real loaders in the one way
that matters: they run the embedded source.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types

import numpy as np
import torch
from torch import nn

from e4e_bench.networks import generator as ours

NETWORKS_SOURCE = '"""training/networks.py of stylegan2-ada-pytorch would be here."""\n'
TF_NETWORKS_SOURCE = '"""training/networks_stylegan2.py of the TF release would be here."""\n'


def reconstruct_persistent_obj(meta):
    """As torch_utils.persistence does, run the class's module source first."""
    exec(compile(meta["module_src"], "<module_src>", "exec"), {})
    return meta


class EasyDict(dict):
    pass


class Network:
    """dnnlib.tflib.network.Network: pickles its state; unpickling runs `build_module_src`."""

    def __init__(self, name: str, variables: dict[str, np.ndarray], components: dict | None = None,
                 static_kwargs: dict | None = None, build_module_src: str = TF_NETWORKS_SOURCE):
        self.state = dict(
            version=4, name=name, static_kwargs=dict(static_kwargs or {}), components=dict(components or {}),
            build_module_src=build_module_src, build_func_name=f"G_{name}",
            variables=list(variables.items()), input_shapes=[[None, 512]], output_shapes=[[None, 3, 32, 32]],
            input_names=["latents_in"], output_names=["images_out"],
        )

    def __getstate__(self):
        return self.state

    def __setstate__(self, state):
        exec(compile(state["build_module_src"], "<build_module_src>", "exec"), {})
        self.state = state


def _place(obj, module: str, name: str):
    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    return obj


_place(reconstruct_persistent_obj, "torch_utils.persistence", "_reconstruct_persistent_obj")
_place(EasyDict, "dnnlib.util", "EasyDict")
_place(Network, "dnnlib.tflib.network", "Network")


@contextlib.contextmanager
def nvidia_modules():
    """NVIDIA's module names in sys.modules for the duration, so pickle finds (and writes) them."""
    names = {"torch_utils": {}, "torch_utils.persistence": {"_reconstruct_persistent_obj": reconstruct_persistent_obj},
             "dnnlib": {}, "dnnlib.util": {"EasyDict": EasyDict}, "dnnlib.tflib": {},
             "dnnlib.tflib.network": {"Network": Network}}
    saved = {name: sys.modules.get(name) for name in names}
    for name, members in names.items():
        module = types.ModuleType(name)
        vars(module).update(members)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class Persistent(nn.Module):
    """A persistent class of stylegan2-ada-pytorch: pickles as _reconstruct_persistent_obj(meta)."""

    module_src = NETWORKS_SOURCE

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=type(self).__name__,
                    state=self.__getstate__())
        return reconstruct_persistent_obj, (meta,)


# NVIDIA's class names (training/networks.py); only the state matters.
class FullyConnectedLayer(Persistent): pass
class MappingNetwork(Persistent): pass
class SynthesisLayer(Persistent): pass
class ToRGBLayer(Persistent): pass
class SynthesisBlock(Persistent): pass
class SynthesisNetwork(Persistent): pass
class Generator(Persistent): pass
class Discriminator(Persistent): pass
class AugmentPipe(Persistent): pass


def module(cls, parameters=None, buffers=None, children=None, init_kwargs=None, **attributes) -> Persistent:
    m = cls()
    m._init_args, m._init_kwargs = (), dict(init_kwargs or {})
    for name, value in (parameters or {}).items():
        m.register_parameter(name, nn.Parameter(value.detach().clone(), requires_grad=False))
    for name, value in (buffers or {}).items():
        m.register_buffer(name, value.detach().clone())
    for name, child in (children or {}).items():
        m.add_module(name, child)
    for name, value in attributes.items():
        setattr(m, name, value)
    return m


def fully_connected(weight, bias, lr_multiplier=1.0, activation="linear") -> Persistent:
    return module(FullyConnectedLayer, {"weight": weight, "bias": bias}, activation=activation,
                  weight_gain=lr_multiplier / np.sqrt(weight.shape[1]), bias_gain=lr_multiplier)


def setup_filter(taps=(1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    k = torch.tensor(taps)
    return torch.outer(k, k) / torch.outer(k, k).sum()


def ada_generator(g: ours.Generator, w_avg: torch.Tensor, lr_multiplier: float = 0.01, conv_clamp: int | None = None,
                  fp16_resolutions: tuple[int, ...] = (), c_dim: int = 0) -> Persistent:
    """`g`'s weights as an ada-pytorch Generator (ada key <- rosinality key, reference §2.6)."""
    sd = g.state_dict()
    d = g.style_dim

    def layer(ros: str, res: int, noise: int, up: int) -> Persistent:
        affine = fully_connected(sd[f"{ros}.conv.modulation.weight"], sd[f"{ros}.conv.modulation.bias"])
        return module(SynthesisLayer, {"weight": sd[f"{ros}.conv.weight"][0], "noise_strength": sd[f"{ros}.noise.weight"][0],
                                       "bias": sd[f"{ros}.activate.bias"]},
                      {"resample_filter": setup_filter(), "noise_const": sd[f"noises.noise_{noise}"][0, 0]},
                      {"affine": affine}, resolution=res, up=up, use_noise=True, activation="lrelu",
                      conv_clamp=conv_clamp, padding=1, act_gain=np.sqrt(2))

    def torgb(ros: str) -> Persistent:
        affine = fully_connected(sd[f"{ros}.conv.modulation.weight"], sd[f"{ros}.conv.modulation.bias"])
        weight = sd[f"{ros}.conv.weight"][0]
        return module(ToRGBLayer, {"weight": weight, "bias": sd[f"{ros}.bias"].reshape(3)}, children={"affine": affine},
                      conv_clamp=conv_clamp, weight_gain=1 / np.sqrt(weight.shape[1]))

    def block(res: int, children: dict, **parameters) -> Persistent:
        return module(SynthesisBlock, parameters, {"resample_filter": setup_filter()}, children, resolution=res,
                      architecture="skip", use_fp16=res in fp16_resolutions, img_channels=3, channels_last=False)

    blocks = {"b4": block(4, {"conv1": layer("conv1", 4, 0, 1), "torgb": torgb("to_rgb1")}, const=sd["input.input"][0])}
    for k in range(len(g.to_rgbs)):
        res = 2 ** (k + 3)
        blocks[f"b{res}"] = block(res, {"conv0": layer(f"convs.{2 * k}", res, 2 * k + 1, 2),
                                        "conv1": layer(f"convs.{2 * k + 1}", res, 2 * k + 2, 1),
                                        "torgb": torgb(f"to_rgbs.{k}")})
    synthesis = module(SynthesisNetwork, children=blocks, w_dim=d, img_resolution=g.size, img_channels=3,
                       block_resolutions=[2 ** i for i in range(2, g.log_size + 1)], num_fp16_res=len(fp16_resolutions))
    fcs = {f"fc{i}": fully_connected(sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"], lr_multiplier, "lrelu")
           for i in range(g.n_mlp)}
    if c_dim:
        fcs["embed"] = fully_connected(torch.randn(d, c_dim), torch.zeros(d))
    mapping = module(MappingNetwork, buffers={"w_avg": w_avg}, children=fcs, z_dim=d, c_dim=c_dim, w_dim=d,
                     num_ws=g.n_latent, num_layers=g.n_mlp, w_avg_beta=0.995)
    init_kwargs = dict(z_dim=d, c_dim=c_dim, w_dim=d, img_resolution=g.size, img_channels=3,
                       mapping_kwargs=EasyDict(num_layers=g.n_mlp, lr_multiplier=lr_multiplier),
                       synthesis_kwargs=EasyDict(channel_base=16384, channel_max=512,
                                                 num_fp16_res=len(fp16_resolutions), conv_clamp=conv_clamp))
    return module(Generator, children={"synthesis": synthesis, "mapping": mapping}, init_kwargs=init_kwargs,
                  z_dim=d, c_dim=c_dim, w_dim=d, img_resolution=g.size, img_channels=3, num_ws=g.n_latent)


def tf_layer(sd: dict, ros: str, flip: bool = False) -> dict[str, np.ndarray]:
    """A modulated layer in TF's layout: weight [kh, kw, in, out], style bias without its +1."""
    weight = sd[f"{ros}.conv.weight"][0].numpy().transpose(2, 3, 1, 0)
    variables = {"weight": weight[::-1, ::-1] if flip else weight,
                 "mod_weight": sd[f"{ros}.conv.modulation.weight"].numpy().T,
                 "mod_bias": sd[f"{ros}.conv.modulation.bias"].numpy() - 1}
    if f"{ros}.noise.weight" in sd:
        variables |= {"noise_strength": sd[f"{ros}.noise.weight"].numpy()[0], "bias": sd[f"{ros}.activate.bias"].numpy()}
    else:
        variables["bias"] = sd[f"{ros}.bias"].numpy().reshape(3)
    return variables


def tf_generator(g: ours.Generator, w_avg: torch.Tensor, name: str = "Gs", lr_multiplier: float = 0.01,
                 build_module_src: str = TF_NETWORKS_SOURCE, **static_kwargs) -> Network:
    """`g`'s weights as a TF-release generator network with `mapping` and `synthesis` components."""
    sd = g.state_dict()
    mapping = {f"Dense{i}/{kind}": sd[f"style.{i + 1}.{kind}"].numpy().T for i in range(g.n_mlp) for kind in ("weight", "bias")}
    layers = {"4x4/Conv": tf_layer(sd, "conv1"), "4x4/ToRGB": tf_layer(sd, "to_rgb1")}
    for k in range(len(g.to_rgbs)):
        res = 2 ** (k + 3)
        layers |= {f"{res}x{res}/Conv0_up": tf_layer(sd, f"convs.{2 * k}", flip=True),
                   f"{res}x{res}/Conv1": tf_layer(sd, f"convs.{2 * k + 1}"), f"{res}x{res}/ToRGB": tf_layer(sd, f"to_rgbs.{k}")}
    synthesis = {"4x4/Const/const": sd["input.input"].numpy(), "lod": np.float32(0)}
    synthesis |= {f"{scope}/{var}": value for scope, variables in layers.items() for var, value in variables.items()}
    synthesis |= {f"noise{i}": sd[f"noises.noise_{i}"].numpy() for i in range(g.num_layers)}
    kwargs = dict(num_channels=3, resolution=g.size, label_size=0, architecture="skip", resample_kernel=[1, 3, 3, 1],
                  mapping_layers=g.n_mlp, mapping_lrmul=lr_multiplier, latent_size=g.style_dim,
                  dlatent_size=g.style_dim) | static_kwargs
    components = {"mapping": Network(f"{name}_mapping", mapping, static_kwargs=kwargs, build_module_src=build_module_src),
                  "synthesis": Network(f"{name}_synthesis", synthesis, static_kwargs=kwargs, build_module_src=build_module_src)}
    return Network(name, {"dlatent_avg": w_avg.numpy()}, components, kwargs, build_module_src)


def ada_snapshot(g_ema: Persistent, g: Persistent | None = None, **training_set_kwargs) -> dict:
    discriminator = module(Discriminator, {"weight": torch.randn(4, 4)}, c_dim=0)
    augment_pipe = module(AugmentPipe, buffers={"p": torch.zeros([])}, xflip=1.0, rotate90=1.0)
    kwargs = dict(class_name="training.dataset.ImageFolderDataset", path="~/datasets/tiny.zip", use_labels=False,
                  max_size=4, xflip=False, resolution=32) | training_set_kwargs
    return dict(training_set_kwargs=kwargs, G=g or g_ema, D=discriminator, G_ema=g_ema, augment_pipe=augment_pipe)


def tf_networks(gs: Network, g: Network | None = None) -> tuple:
    discriminator = Network("D", {"Output/weight": np.ones((4, 1), np.float32)})
    return (g or gs, discriminator, gs)


def write_pickle(path: os.PathLike, content, protocol: int = 3, module_src: str = NETWORKS_SOURCE) -> os.PathLike:
    """Pickle `content` as NVIDIA's code would (protocol 3: Python 3.7, the releases' interpreter)."""
    with nvidia_modules():
        Persistent.module_src = module_src
        try:
            with open(path, "wb") as f:
                pickle.dump(content, f, protocol=protocol)
        finally:
            Persistent.module_src = NETWORKS_SOURCE
    return path


def load_naively(path: os.PathLike):
    """What a plain pickle.load with NVIDIA's code importable does: runs whatever the file says."""
    with nvidia_modules(), open(path, "rb") as f:
        return pickle.load(f)


class SystemCall:
    """A payload: unpickling calls os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class ExecCall:
    """A payload: unpickling calls builtins.exec(code)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)
