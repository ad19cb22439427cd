"""Every training option in one frozen dataclass, with the official names, defaults and recipes.

Field names are the official e4e/pSp argparse names (`E4E/options/train_options.py`,
`PSP/options/train_options.py`) so that `to_opts_dict()` is the official `opts` dict a checkpoint
carries; fields marked `ours` are this project's additions. Defaults are the official argparse
defaults; `recipe_defaults(method, domain)` holds what the authors' READMEs change per method
and domain (encoders.md §4.1-4.2).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields

from e4e_bench.domains import DOMAINS
from e4e_bench.errors import E4EBenchError
from encoders.checkpoint import ENCODERS, encoder_type_for
from encoders.hyperstyle_checkpoint import HYPERNET_TYPE
from encoders.ir_se import valid_stage_depths
from encoders.training.progressive import progressive_steps

TRAINED_ENCODERS = ("e4e", "psp", "restyle_psp", "restyle_e4e", "hyperstyle")  # the methods this trainer trains
PROGRESSIVE = ("e4e", "restyle_e4e")  # the methods with e4e's progressive offsets and latent discriminator
ITERATIVE = ("restyle_psp", "restyle_e4e")  # ReStyle: several refinement steps per batch
REFINING = (*ITERATIVE, "hyperstyle")  # several passes per batch, each reading the image beside the last output
TOY_RESTYLE_STEPS = {"restyle_psp": 2500, "restyle_e4e": 3500}  # the e4e variant's regularisers slow it down
TOY_W_ENCODER_STEPS = 8000  # about 15 minutes on one thread (10 steps/s alone, 5 beside the HyperStyle run)
TOY_HYPERSTYLE_STEPS = 3000
# The networks each method trains, by official class name: its encoders, or HyperStyle's hypernetwork.
TRAINED_TYPES = {method: tuple(name for name, entry in ENCODERS.items() if entry.method == method)
                 for method in TRAINED_ENCODERS} | {"hyperstyle": (HYPERNET_TYPE,)}
LAYER_LIST = re.compile(r"(\d+(,\d+)*)?")  # --layers-to-tune: "" or comma-separated generator layer indices
OPTIMIZERS = ("ranger", "adam")
LPIPS_TYPES = ("alex", "vgg")
ENCODER_INITS = ("ir_se50", "resnet34", "random")


def cores_per_process() -> int:
    """The cores this process may use (its CPU affinity, which DataLoader's own check counts), shared by the
    processes torchrun starts on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _opt(default, help: str, ours: bool = False, flag: str | None = None):
    return field(default=default, metadata={"help": help, "ours": ours, "flag": flag})


@dataclass(frozen=True)
class TrainOptions:
    # -- official options ----------------------------------------------------------------------
    exp_dir: str = _opt("", "output folder (set by --out)", flag="--out")
    dataset_type: str = _opt("ffhq_encode", "official dataset name; derived from --domain")
    encoder_type: str = _opt("Encoder4Editing", "official encoder class name (default: the method's; e4e also trains "
                                                "HyperStyle's WEncoder, one code for every layer)")
    input_nc: int = _opt(3, "encoder input channels: 3 (RGB) for e4e/pSp, 6 (RGB + reconstruction) for ReStyle and "
                            "HyperStyle; set from --method")
    label_nc: int = _opt(0, "pSp: label channels; 0 for encoding, kept for the official loaders")
    learn_in_w: bool = _opt(False, "pSp: one code for all rows; W+ encoding only, kept for the official loaders")
    batch_size: int = _opt(4, "training images per step and per process (effective batch = this x processes)")
    test_batch_size: int = _opt(2, "images per evaluation batch")
    workers: int = _opt(min(4, cores_per_process()), "data-loading worker processes for training "
                                                     "(the official 4, at most one per core of this process)")
    test_workers: int = _opt(min(2, cores_per_process()), "data-loading worker processes for evaluation "
                                                          "(the official 2, at most one per core of this process)")
    learning_rate: float = _opt(1e-4, "encoder learning rate")
    optim_name: str = _opt("ranger", "encoder optimiser: ranger (RAdam + Lookahead) or adam")
    train_decoder: bool = _opt(False, "also train the generator (the official recipes keep it frozen)")
    start_from_latent_avg: bool = _opt(False, "add the generator's average latent to the encoder output")
    lpips_type: str = _opt("alex", "LPIPS backbone: alex or vgg")
    lpips_lambda: float = _opt(0.8, "weight of the LPIPS loss")
    id_lambda: float = _opt(0.1, "e4e: weight of the domain's similarity loss (ArcFace for faces, MoCo otherwise); "
                                 "pSp: weight of the ArcFace identity loss")
    moco_lambda: float = _opt(0.0, "pSp: weight of the MoCo-v2 similarity loss")
    l2_lambda: float = _opt(1.0, "weight of the L2 (MSE) loss")
    w_norm_lambda: float = _opt(0.0, "pSp: weight of the distance of the codes from the average latent")
    lpips_lambda_crop: float = _opt(0.0, "pSp: weight of LPIPS on the face crop [35:223, 32:220]")
    l2_lambda_crop: float = _opt(0.0, "pSp: weight of L2 on the face crop [35:223, 32:220]")
    w_discriminator_lambda: float = _opt(0.0, "e4e: weight of the latent discriminator's adversarial loss")
    w_discriminator_lr: float = _opt(2e-5, "e4e: learning rate of the latent discriminator (Adam)")
    r1: float = _opt(10.0, "e4e: R1 penalty weight of the latent discriminator")
    d_reg_every: int = _opt(16, "e4e: apply R1 every this many steps (lazy regularisation)")
    use_w_pool: bool = _opt(False, "e4e: feed the discriminator through pools of past codes")
    w_pool_size: int = _opt(50, "e4e: codes kept in each pool")
    delta_norm: int = _opt(2, "e4e: p of the norm in the delta regulariser")
    delta_norm_lambda: float = _opt(2e-4, "e4e: weight of the delta regulariser")
    stylegan_weights: str = _opt("", "generator checkpoint to train against (default: the domain's asset)",
                                 flag="--generator")
    stylegan_size: int = _opt(1024, "e4e: generator resolution; set from the generator")
    output_size: int = _opt(1024, "pSp: generator resolution; set from the generator")
    checkpoint_path: str | None = _opt(None, "e4e/pSp checkpoint whose encoder (and latent_avg) the training starts "
                                             "from; on --resume, the file resumed from")
    max_steps: int = _opt(500_000, "number of training steps")
    image_interval: int = _opt(100, "save an input|reconstruction grid every this many steps")
    board_interval: int = _opt(50, "log the training losses every this many steps")
    val_interval: int = _opt(1000, "evaluate on the held-out images every this many steps")
    save_interval: int | None = _opt(None, "save iteration_N.pt every this many steps (default: at the end)")
    n_iters_per_batch: int = _opt(5, "ReStyle, HyperStyle: refinement passes per batch, each with its own losses and "
                                     "backward")
    w_encoder_checkpoint_path: str = _opt("", "HyperStyle: the frozen W encoder file that gives the codes (an e4e "
                                              "layout file, e.g. from `train --method e4e --encoder-type WEncoder`)",
                                          flag="--w-encoder")
    layers_to_tune: str = _opt("", "HyperStyle: comma-separated generator layers the hypernetwork offsets (\"\": every "
                                   "layer but the toRGBs)")
    snapshot_minutes: float = _opt(
        10.0, "also save a resumable iteration_N.pt after this many minutes without a save, replacing the previous "
              "such snapshot (0: never); Ctrl-C or SIGTERM always saves one before stopping", ours=True)
    progressive_steps: tuple[int, ...] | None = _opt(None, "e4e: steps at which stage i starts (first must be 0)")
    progressive_start: int | None = _opt(None, "e4e: step of the first offset; one more every --progressive-step-every")
    progressive_step_every: int = _opt(2000, "e4e: steps between two offsets")
    # -- ours ----------------------------------------------------------------------------------
    method: str = _opt("e4e", ", ".join(TRAINED_ENCODERS), ours=True)
    domain: str = _opt("faces", "domain: fixes the resolution, crop, input size and similarity network", ours=True)
    data: str = _opt("", "folder of training images", ours=True)
    test_data: str | None = _opt(None, "folder of held-out images (default: split off --data)", ours=True)
    test_fraction: float = _opt(0.1, "share of --data held out for evaluation when --test-data is absent", ours=True)
    input_size: tuple[int, int] | None = _opt(
        None, "encoder input H,W (default: the domain's); lets any generator size train", ours=True)
    device: str = _opt("auto", "auto, cpu, cuda or cuda:K (under torchrun: one GPU per process)", ours=True)
    seed: int = _opt(0, "seed of every random stream (split, order, flips, noise, discriminator)", ours=True)
    random_weights: bool = _opt(
        False, "random LPIPS/ArcFace/MoCo weights instead of the assets (offline smoke runs only)", ours=True)
    encoder_stage_depths: tuple[int, ...] | None = _opt(
        None, "IR-SE widths of the encoder's stem and 4 stages (default: the official 64 128 256 512; narrower ones "
              "are for tests and start from random weights)", ours=True)
    encoder_init: str = _opt("ir_se50", "encoder backbone start: ir_se50 (ArcFace weights, official for IR-SE "
                                        "backbones), resnet34 (ImageNet, official for ReStyle's ResNet-34) or random",
                             ours=True)
    flip: bool = _opt(True, "random horizontal flips of the training images, as the official transforms", ours=True)
    grid_images: int = _opt(4, "images per input|reconstruction grid", ours=True)
    hypernet_width: int = _opt(512, "HyperStyle: values of each layer's code (the official out_c 512); narrower "
                                    "ones are for tests and the toy", ours=True)
    hypernet_refinement_inner: int = _opt(256, "HyperStyle: inner width of a layer's own refinement block", ours=True)
    hypernet_shared_inner: int = _opt(128, "HyperStyle: inner width of the refinement blocks of the shared head",
                                      ours=True)

    def __post_init__(self):
        checks = [
            (self.method in TRAINED_ENCODERS, f"--method must be one of {', '.join(TRAINED_ENCODERS)}, got {self.method!r}"),
            (self.optim_name in OPTIMIZERS, f"--optim-name must be one of {', '.join(OPTIMIZERS)}"),
            ((self.input_nc, self.label_nc, self.learn_in_w) == (6 if self.method in REFINING else 3, 0, False),
             "only RGB-to-W+ encoding is trained here: input_nc 3 (ReStyle, HyperStyle: 6), label_nc 0, learn_in_w off"),
            (self.encoder_type in TRAINED_TYPES.get(self.method, ()),
             f"--encoder-type {self.encoder_type} is not an encoder of {self.method}; its encoders: "
             f"{', '.join(TRAINED_TYPES.get(self.method, ()))}"),
            (self.encoder_init == "random" or (self.encoder_init == "resnet34") == resnet_backbone(self.encoder_type),
             "--encoder-init ir_se50 starts IR-SE backbones, resnet34 ResNet-34 ones (ReStyle beyond faces, "
             "HyperStyle's hypernetwork)"),
            (self.n_iters_per_batch >= 1, "--n-iters-per-batch must be at least 1"),
            (self.encoder_stage_depths is None or valid_stage_depths(self.encoder_stage_depths),
             "--encoder-stage-depths must be 4 increasing widths, the first at least 16"),
            (self.encoder_stage_depths is None or self.encoder_init == "random",
             "--encoder-stage-depths other than the official widths needs --encoder-init random"),
            (self.encoder_init in ENCODER_INITS, f"--encoder-init must be one of {', '.join(ENCODER_INITS)}"),
            (self.lpips_type in LPIPS_TYPES, f"--lpips-type must be one of {', '.join(LPIPS_TYPES)}"),
            (self.batch_size >= 1 and self.test_batch_size >= 1, "batch sizes must be at least 1"),
            (self.max_steps >= 1, "--max-steps must be at least 1"),
            (self.learning_rate > 0 and self.w_discriminator_lr > 0, "learning rates must be positive"),
            (all(v >= 0 for v in self.loss_weights().values()), "loss weights (--*-lambda) must be >= 0"),
            (0 < self.test_fraction < 1, "--test-fraction must be between 0 and 1"),
            (self.d_reg_every >= 1 and self.w_pool_size >= 0, "--d-reg-every must be >= 1, --w-pool-size >= 0"),
            (min(self.image_interval, self.board_interval, self.val_interval, self.save_interval or 1) >= 1,
             "intervals must be at least 1"),
            (self.snapshot_minutes >= 0, "--snapshot-minutes must be >= 0 (0 turns wall-time snapshots off)"),
            (self.progressive_steps is None or (len(self.progressive_steps) > 0 and self.progressive_steps[0] == 0
                                                and list(self.progressive_steps) == sorted(self.progressive_steps)),
             "--progressive-steps must start at 0 and increase"),
            (self.method in PROGRESSIVE or (self.progressive_steps is None and self.progressive_start is None
                                             and self.w_discriminator_lambda == 0),
             "progressive training and the latent discriminator are e4e options; drop them for --method "
             f"{self.method}"),
            (self.input_size is None or (len(self.input_size) == 2 and min(self.input_size) >= 16),
             "--input-size must be H,W with both at least 16"),
            (LAYER_LIST.fullmatch(self.layers_to_tune) is not None,
             f"--layers-to-tune must be comma-separated layer indices such as 0,2,3, got {self.layers_to_tune!r}"),
            (min(self.hypernet_width, self.hypernet_refinement_inner, self.hypernet_shared_inner) >= 1,
             "--hypernet-* widths must be at least 1"),
            (self.method == "hyperstyle" or (not self.w_encoder_checkpoint_path and not self.layers_to_tune),
             f"--w-encoder and --layers-to-tune are HyperStyle options; drop them for --method {self.method}"),
            (self.method != "hyperstyle" or self.start_from_latent_avg,
             "HyperStyle adds latent_avg to the W encoder's codes; drop --no-start-from-latent-avg"),
        ]
        for ok, message in checks:
            if not ok:
                raise E4EBenchError(message)

    def tuned_layers(self) -> tuple[int, ...] | None:
        """--layers-to-tune as indices; None for the default, every layer but the toRGBs."""
        return tuple(int(index) for index in self.layers_to_tune.split(",")) if self.layers_to_tune else None

    def loss_weights(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in (
            "lpips_lambda", "id_lambda", "moco_lambda", "l2_lambda", "w_norm_lambda", "lpips_lambda_crop",
            "l2_lambda_crop", "w_discriminator_lambda", "delta_norm_lambda")}

    def with_schedule(self, n_styles: int) -> TrainOptions:
        """Fill `progressive_steps` from `progressive_start` as the official train.py does."""
        if self.progressive_steps is not None or self.progressive_start is None:
            return self
        return dataclasses.replace(
            self, progressive_steps=tuple(progressive_steps(n_styles, self.progressive_start,
                                                            self.progressive_step_every)))

    def to_opts_dict(self) -> dict:
        """The official `opts` dict (plain types only, so `torch.load(weights_only=True)` reads it)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @staticmethod
    def describe_default(name: str, official) -> str:
        """--help's note on the default of option `name` (see `describe_default`)."""
        return describe_default(name, official)

    @classmethod
    def from_opts_dict(cls, opts: dict) -> TrainOptions:
        """Options from an `opts` dict; official keys this project does not use are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in opts.items() if k in known})


def resnet_backbone(encoder_type: str) -> bool:
    """Whether the class is built on ResNet-34 (ReStyle's ResNet encoders, HyperStyle's hypernetwork), not IR-SE."""
    return encoder_type.startswith("ResNet") or encoder_type == HYPERNET_TYPE


def recipe_defaults(method: str, domain: str, encoder_type: str | None = None) -> dict:
    """The authors' training commands for a method and domain (and, for e4e, the encoder class: `WEncoder` for
    HyperStyle's W encoder), as option overrides.

    e4e: README cars command (MoCo x0.5, w-pool, discriminator 0.1, progressive from 20k, 200k
    steps, batch 8/4); faces as issue #43 (ArcFace x0.1, 300k steps). Horse and church were not
    published; they take the cars recipe. pSp: README encode command (ArcFace x0.1 for faces;
    MoCo x0.5 and no ArcFace elsewhere, as the README recommends). ReStyle and HyperStyle: their README
    commands (the same settings), MoCo x0.5 beyond faces as they say; HyperStyle's hypernetwork starts from
    ImageNet ResNet-34 on every domain.
    """
    if method not in TRAINED_ENCODERS:
        raise E4EBenchError(f"--method must be one of {', '.join(TRAINED_ENCODERS)}, got {method!r}")
    faces = domain == "faces"
    hyperstyle = method == "hyperstyle"
    default_type = HYPERNET_TYPE if hyperstyle else encoder_type_for(method, resnet=not faces)
    # The official `dataset_type` (ffhq_encode, cars_hypernet, ...): what the official loaders key the cars crop on.
    dataset_type = ("ffhq" if faces else domain) + ("_hypernet" if hyperstyle else "_encode")
    common = dict(method=method, domain=domain, encoder_type=encoder_type or default_type, start_from_latent_avg=True,
                  dataset_type=dataset_type, batch_size=8)
    if method in ITERATIVE:
        common |= dict(input_nc=6, encoder_init="ir_se50" if faces else "resnet34")
    if hyperstyle:
        common |= dict(input_nc=6, encoder_init="resnet34")
    if domain == "toy":
        return common | toy_recipe(method, common["encoder_type"])
    if method == "e4e":
        return common | dict(test_batch_size=4, use_w_pool=True, w_discriminator_lambda=0.1,
                             progressive_start=20_000, val_interval=10_000, id_lambda=0.1 if faces else 0.5,
                             max_steps=300_000 if faces else 200_000)
    similarity = dict(id_lambda=0.1 if faces else 0.0, moco_lambda=0.0 if faces else 0.5)
    if method == "psp":
        return common | similarity | dict(test_batch_size=8, val_interval=2500, save_interval=5000)
    refining = common | similarity | dict(test_batch_size=8, val_interval=5000, save_interval=10_000, n_iters_per_batch=5)
    if method == "restyle_e4e":
        return refining | dict(use_w_pool=True, w_discriminator_lambda=0.1, progressive_start=20_000,
                              progressive_step_every=2000, delta_norm_lambda=2e-4)
    return refining


def toy_recipe(method: str, encoder_type: str) -> dict:
    """How the shipped toy encoders were trained: the official recipes scaled to a CPU.

    Offline losses only (L2; e4e's latent discriminator with its pool and delta regulariser, pSp's plain L2);
    narrow backbones from random weights, Adam at 1e-3 (Ranger at 1e-4 barely moves a random backbone in so
    few steps); e4e's progressive schedule compressed from 20k + 2k per offset to 500 + 300. e4e and pSp: an
    IR-SE50 of widths 16, 32, 48, 64, 8,000 steps; ReStyle (5 refinement steps per batch): a ResNet-34 of
    widths 16, 24, 32, 48, 2,500 (pSp) and 3,500 (e4e) steps. HyperStyle's W encoder (e4e's `WEncoder`): the e4e
    recipe without the discriminator and the progressive offsets (no offsets to grow), an IR-SE50 of widths 16, 32,
    40, 64, TOY_W_ENCODER_STEPS steps. HyperStyle (5 passes per batch): a ResNet-34 of widths 16, 24, 32, 48, codes
    of 32 values, refinement blocks 32 (16 for the shared head's) wide, TOY_HYPERSTYLE_STEPS steps.
    """
    common = dict(encoder_init="random", encoder_stage_depths=(16, 32, 48, 64), lpips_lambda=0.0, id_lambda=0.0,
                  moco_lambda=0.0, optim_name="adam", learning_rate=1e-3, max_steps=8000, batch_size=8,
                  test_batch_size=16, val_interval=1000, image_interval=1000, board_interval=50, save_interval=1000)
    if method in ITERATIVE:
        common |= dict(encoder_stage_depths=(16, 24, 32, 48), max_steps=TOY_RESTYLE_STEPS[method], val_interval=500,
                       image_interval=500, save_interval=500)
    if method == "hyperstyle":
        return common | dict(encoder_stage_depths=(16, 24, 32, 48), hypernet_width=32, hypernet_refinement_inner=32,
                             hypernet_shared_inner=16, n_iters_per_batch=5, max_steps=TOY_HYPERSTYLE_STEPS,
                             val_interval=500, image_interval=500, save_interval=500)
    if encoder_type == "WEncoder":  # stage 3 at 40, not 48: the W encoder and hypernetwork files fit in 8 MB
        return common | dict(encoder_stage_depths=(16, 32, 40, 64), max_steps=TOY_W_ENCODER_STEPS)
    if method in PROGRESSIVE:
        return common | dict(use_w_pool=True, w_discriminator_lambda=0.1, progressive_start=500, progressive_step_every=300)
    return common


UNSET = "unset"


def describe_default(name: str, official) -> str:
    """The default of option `name` for --help ("" when unset): one value, or each recipe's where the
    recipes differ, e.g. 'defaults: e4e 0.1 (faces), 0.5 (cars, horse, church); psp 0.1 (faces), ...'."""
    per_method = {}
    for method in TRAINED_ENCODERS:
        domains_by_value: dict[str, list[str]] = {}
        for domain in DOMAINS:
            value = recipe_defaults(method, domain).get(name, official)
            domains_by_value.setdefault(option_text(value), []).append(domain)
        per_method[method] = domains_by_value
    values = {value for domains_by_value in per_method.values() for value in domains_by_value}
    if values == {UNSET}:
        return ""  # the option's help says what its absence means
    if len(values) == 1:
        return f"default: {values.pop()}"
    parts = []
    for method, domains_by_value in per_method.items():
        if len(domains_by_value) == 1:
            parts.append(f"{method} {next(iter(domains_by_value))}")
        else:
            parts.append(f"{method} " + ", ".join(f"{value} ({', '.join(domains)})"
                                                  for value, domains in domains_by_value.items()))
    return f"defaults: {'; '.join(parts)}"


def option_text(value) -> str:
    if value is None or value == "":
        return UNSET
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)
