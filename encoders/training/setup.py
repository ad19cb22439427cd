"""From options to a ready training run: options with resume, weights checks, models, data.

Every check a user can fail (missing weights, empty data, generator of the wrong size, a resume
file of another method, conflicting options) happens here, before the first step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from e4e_bench.assets import asset_path, cache_home, get_asset, resolve_file
from e4e_bench.checkpoints import load_generator, read_checkpoint
from e4e_bench.data import ImageFolder, list_images
from e4e_bench.domains import Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.lpips_net import BACKBONE_ASSETS, build_lpips
from e4e_bench.networks.moco import MOCO_ASSET, load_moco
from e4e_bench.seeding import seeded_initialisation
from encoders.checkpoint import ENCODERS, MEAN_LATENT_SAMPLES, load_inverter
from encoders.hypernetwork import SharedWeightsHyperNetResNet, layer_shapes
from encoders.hyperstyle import HyperStyle
from encoders.hyperstyle_checkpoint import load_hyperstyle, load_w_encoder
from encoders.ir_se import STAGE_DEPTHS, ArcFaceIRSE
from encoders.resnet import STAGE_WIDTHS, torchvision_to_body
from e4e_bench.distributed import ProcessGroup, start_process_group
from encoders.training.losses import IR_SE50_ASSET, ArcFaceSimilarity, EncoderObjective, LossNetworks, similarity_networks
from encoders.training.options import TrainOptions, recipe_defaults
from encoders.training.trainer import (
    RESUMABLE_OVERRIDES,
    Run,
    latest_checkpoint,
    make_run,
    read_resume_checkpoint,
    restore,
    train,
)

# Largest encoder input side: the fine map2style heads bring a H/4 map to 1x1 with six stride-2 convs.
MAX_INPUT_SIDE = 256
SIMILARITY_ASSETS = {"arcface": IR_SE50_ASSET, "moco": MOCO_ASSET}
RESNET34_ASSET = "resnet34-imagenet"
BACKBONE_INITS = {"ir_se50": IR_SE50_ASSET, "resnet34": RESNET34_ASSET}  # --encoder-init -> its weights


def resolve_options(method: str, domain: str, overrides: dict, resume: str | None) -> tuple[TrainOptions, dict | None]:
    """Recipe defaults < command-line flags; on resume, the checkpoint's options < the few flags that
    may change (RESUMABLE_OVERRIDES). A flag that contradicts the checkpoint is an error."""
    opts = TrainOptions(**(recipe_defaults(method, domain, overrides.get("encoder_type")) | overrides))
    if resume is None:
        return opts, None
    path = latest_checkpoint(Path(opts.exp_dir)) if resume == "latest" else Path(resume)
    if path is None:
        raise E4EBenchError(f"--resume: no iteration_N.pt in {Path(opts.exp_dir) / 'checkpoints'}; "
                            "start without --resume or pass the checkpoint path")
    ckpt = read_resume_checkpoint(path, method)
    saved = TrainOptions.from_opts_dict(ckpt["opts"])
    given = overrides | {"method": method, "domain": domain}
    conflicts = [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(saved, k)})" for k, v in given.items()
                 if k not in RESUMABLE_OVERRIDES and getattr(saved, k) != v]
    if conflicts:
        raise E4EBenchError(f"{path} was trained with other options: {'; '.join(conflicts)}; drop these flags to "
                            f"resume, or start a new run in another --out folder")
    kept = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}
    return dataclasses.replace(saved, **kept, checkpoint_path=str(path)), ckpt


def required_assets(opts: TrainOptions, domain: Domain, resuming: bool) -> dict[str, str]:
    """{asset name: what needs it} for this run."""
    needs: dict[str, str] = {}
    if not opts.stylegan_weights:
        if domain.generator_asset is None:
            raise E4EBenchError(f"domain {domain.name!r} has no default generator; pass --generator PATH")
        needs[domain.generator_asset] = "the generator"
    if opts.encoder_init in BACKBONE_INITS and not resuming and not opts.checkpoint_path:
        needs[BACKBONE_INITS[opts.encoder_init]] = "the encoder's initialisation (or --encoder-init random)"
    if opts.random_weights:
        return needs
    if opts.lpips_lambda > 0 or opts.lpips_lambda_crop > 0:
        needs[BACKBONE_ASSETS[opts.lpips_type]] = "the LPIPS loss (or --lpips-lambda 0)"
    for term, network in similarity_networks(opts, domain).items():
        flag = "--id-lambda" if term == "id" else "--moco-lambda"
        needs.setdefault(SIMILARITY_ASSETS[network], f"the {network} similarity loss (or {flag} 0)")
    return needs


def check_assets(needs: dict[str, str]) -> None:
    missing = {name: why for name, why in needs.items() if not get_asset(name).path.is_file()}
    if missing:
        listed = "; ".join(f"{name} for {why}" for name, why in missing.items())
        fetch = " && ".join(f"python -m e4e_bench assets fetch {name}" for name in missing)
        raise E4EBenchError(f"training needs weights that are not in {cache_home()}: {listed}; run `{fetch}`")


def split_images(opts: TrainOptions) -> tuple[list[Path], list[Path]]:
    """(train, test) files: --test-data, or a seeded share of --data held out."""
    if not opts.data:
        raise E4EBenchError("--data is required: a folder of training images")
    paths = list_images(opts.data)
    if opts.test_data:
        return paths, list_images(opts.test_data)
    if len(paths) < 2:
        raise E4EBenchError(f"{opts.data} holds {len(paths)} image; training needs at least 2 "
                            "(one is held out for evaluation) or --test-data DIR")
    n_test = min(len(paths) - 1, max(1, round(len(paths) * opts.test_fraction)))
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(opts.seed)).tolist()
    return sorted(paths[i] for i in order[n_test:]), sorted(paths[i] for i in order[:n_test])


def load_decoder(opts: TrainOptions, domain: Domain, device: torch.device):
    path = resolve_file(opts.stylegan_weights) if opts.stylegan_weights else asset_path(domain.generator_asset)
    decoder, latent_avg = load_generator(path, device)
    if opts.input_size is None and decoder.size != domain.resolution:
        raise E4EBenchError(f"{path} is a {decoder.size}px generator but domain {domain.name!r} needs "
                            f"{domain.resolution}px; pass that domain's generator, or --input-size H,W to train at "
                            "another size")
    return path, decoder, latent_avg


def average_latent(decoder, stored: torch.Tensor | None, seed: int) -> torch.Tensor:
    """The generator file's latent_avg or, as e4e when it has none, the mean of 10000 mapped samples."""
    if stored is not None:
        return stored
    return decoder.mean_latent(MEAN_LATENT_SAMPLES, rng=torch.Generator(decoder.device).manual_seed(seed))


def build_encoder(opts: TrainOptions, n_styles: int, style_dim: int, pretrained_backbone: bool) -> torch.nn.Module:
    encoder = ENCODERS[opts.encoder_type].encoder(n_styles, style_dim,
                                                  stage_depths=opts.encoder_stage_depths or STAGE_DEPTHS)
    if pretrained_backbone:
        load_backbone(opts, encoder)
    return encoder


def build_hypernet(opts: TrainOptions, decoder, pretrained_backbone: bool) -> SharedWeightsHyperNetResNet:
    """HyperStyle's hypernetwork for `decoder`'s layers, its ResNet-34 from ImageNet when `pretrained_backbone`."""
    try:
        hypernet = SharedWeightsHyperNetResNet(
            layer_shapes(decoder), opts.tuned_layers(), input_nc=opts.input_nc,
            stage_depths=opts.encoder_stage_depths or STAGE_WIDTHS, width=opts.hypernet_width,
            refinement_inner=opts.hypernet_refinement_inner, shared_inner=opts.hypernet_shared_inner)
    except ValueError as err:
        raise E4EBenchError(f"--layers-to-tune {opts.layers_to_tune}: {err} (the generator has "
                            f"{len(decoder.modulated_layers())} modulated layers)") from None
    if pretrained_backbone:
        load_backbone(opts, hypernet)
    return hypernet


def load_backbone(opts: TrainOptions, network: torch.nn.Module) -> None:
    """Start the stem and body of `network` from --encoder-init's weights."""
    path = asset_path(BACKBONE_INITS[opts.encoder_init])
    weights = backbone_weights(opts.encoder_init, read_checkpoint(path), network.input_nc)
    missing, unexpected = network.load_state_dict(weights, strict=False)
    stem_and_body = ("input_layer.", "conv1.", "bn1.", "body.")
    if unexpected or any(k.startswith(stem_and_body) for k in missing if k != "relu.weight"):
        raise E4EBenchError(f"{path} does not hold {opts.encoder_init} weights; re-fetch it with "
                            f"`python -m e4e_bench assets fetch {BACKBONE_INITS[opts.encoder_init]}`")


def backbone_weights(init: str, weights: dict, input_nc: int) -> dict:
    """The stem and body of ArcFace IR-SE50 or ImageNet ResNet-34 under the encoder's names, as the official
    load_weights takes them: a wider input (ReStyle's 6 channels) keeps the RGB filters on its first three
    channels and draws the others from N(0, 1)."""
    if init == "resnet34":
        weights = torchvision_to_body({k: v for k, v in weights.items() if not k.startswith("fc.")})
    else:
        weights = {k: v for k, v in weights.items() if k.startswith(("input_layer.", "body."))}
    stem = "conv1.weight" if init == "resnet34" else "input_layer.0.weight"
    rgb = weights[stem]
    if input_nc != rgb.shape[1]:
        widened = torch.randn(rgb.shape[0], input_nc, *rgb.shape[2:])
        widened[:, : rgb.shape[1]] = rgb
        weights[stem] = widened
    return weights


def starting_point(opts: TrainOptions, encoder: torch.nn.Module, latent_avg: torch.Tensor | None):
    """The encoder weights (strict) and latent_avg of --checkpoint-path, an official-layout e4e/pSp file."""
    start, _ = load_inverter(resolve_file(opts.checkpoint_path), opts.method)
    try:
        encoder.load_state_dict(start.encoder.state_dict(), strict=True)
    except RuntimeError:
        raise E4EBenchError(f"--checkpoint-path {opts.checkpoint_path}: its encoder does not fit the generator being "
                            f"trained against ({start.encoder.n_styles} codes of {start.encoder.style_dim}); pass the "
                            "generator it was trained with") from None
    return encoder, start.latent_avg if opts.start_from_latent_avg else latent_avg


def build_hyperstyle(opts: TrainOptions, decoder, latent_avg: torch.Tensor, pretrained_backbone: bool,
                     fine_tune: bool) -> HyperStyle:
    """The hypernetwork (--checkpoint-path's weights and latent_avg when fine-tuning), `decoder`, and the frozen
    W encoder of --w-encoder."""
    if not opts.w_encoder_checkpoint_path:
        raise E4EBenchError("HyperStyle needs --w-encoder FILE, the frozen W encoder that gives its codes: a file of "
                            "`train --method e4e --encoder-type WEncoder`, an e4e checkpoint, or an asset name such "
                            "as hyperstyle-w-encoder-faces")
    w_encoder_path = resolve_file(opts.w_encoder_checkpoint_path)
    hypernet = build_hypernet(opts, decoder, pretrained_backbone)
    if fine_tune:
        start = load_hyperstyle(resolve_file(opts.checkpoint_path), w_encoder_path)
        try:
            hypernet.load_state_dict(start.hypernet.state_dict(), strict=True)
        except RuntimeError:
            raise E4EBenchError(f"--checkpoint-path {opts.checkpoint_path}: its hypernetwork differs from the one "
                                "these options build (--layers-to-tune, --encoder-stage-depths, --hypernet-*)") from None
        latent_avg = start.latent_avg
    try:
        return HyperStyle(hypernet, decoder, load_w_encoder(w_encoder_path, decoder.n_latent), latent_avg)
    except ValueError as err:
        raise E4EBenchError(f"--w-encoder {w_encoder_path} does not fit the generator being trained against ({err})"
                            ) from None


def build_networks(opts: TrainOptions, domain: Domain, device: torch.device) -> LossNetworks:
    pretrained = not opts.random_weights
    networks = LossNetworks(similarity={})
    if opts.lpips_lambda > 0 or opts.lpips_lambda_crop > 0:
        networks.lpips = build_lpips(opts.lpips_type, pretrained=pretrained, device=device)
    for term, network in similarity_networks(opts, domain).items():
        if network == "moco":
            networks.similarity[term] = load_moco(pretrained=pretrained, device=device)
            continue
        arcface = ArcFaceIRSE(112, 50, drop_ratio=0.6)
        if pretrained:
            arcface.load_state_dict(read_checkpoint(asset_path(IR_SE50_ASSET)), strict=True)
        networks.similarity[term] = ArcFaceSimilarity(arcface.eval().requires_grad_(False)).to(device)
    return networks


def prepare(opts: TrainOptions, group: ProcessGroup, resume_ckpt: dict | None) -> tuple[Run, ImageFolder, ImageFolder]:
    """Models, optimisers, state (restored when resuming) and the two image sets."""
    domain = get_domain(opts.domain)
    check_assets(required_assets(opts, domain, resume_ckpt is not None))
    train_paths, test_paths = split_images(opts)
    generator_path, decoder, stored_avg = load_decoder(opts, domain, group.device)
    input_size = opts.input_size or domain.encoder_input
    content = domain.content_size(decoder.size)
    if content[0] < input_size[0] or content[1] < input_size[1]:
        raise E4EBenchError(f"--input-size {input_size[0]},{input_size[1]} is larger than the {content[0]}x{content[1]} "
                            f"content of the {decoder.size}px generator; use a smaller --input-size")
    if max(input_size) > MAX_INPUT_SIDE:
        raise E4EBenchError(f"--input-size {input_size[0]},{input_size[1]} is too large for the e4e/pSp heads; "
                            f"use sides of at most {MAX_INPUT_SIDE}")
    opts = dataclasses.replace(opts, stylegan_weights=str(generator_path), stylegan_size=decoder.size,
                               output_size=decoder.size, input_size=input_size).with_schedule(decoder.n_latent)
    if opts.progressive_steps is not None and len(opts.progressive_steps) > decoder.n_latent:
        raise E4EBenchError(f"--progressive-steps has {len(opts.progressive_steps)} entries but the generator has "
                            f"{decoder.n_latent} style rows; give at most one entry per row")
    # Initial weights (heads, discriminator) identical in every process and every run.
    with seeded_initialisation(opts.seed):
        latent_avg = average_latent(decoder, stored_avg, opts.seed) if opts.start_from_latent_avg else None
        fine_tune = resume_ckpt is None and opts.checkpoint_path is not None
        pretrained = opts.encoder_init in BACKBONE_INITS and resume_ckpt is None and not fine_tune
        if opts.method == "hyperstyle":
            net = build_hyperstyle(opts, decoder, latent_avg, pretrained, fine_tune)
        else:
            encoder = build_encoder(opts, decoder.n_latent, decoder.style_dim, pretrained_backbone=pretrained)
            if fine_tune:
                encoder, latent_avg = starting_point(opts, encoder, latent_avg)
            net = ENCODERS[opts.encoder_type].inverter(encoder, decoder, latent_avg)
        objective = EncoderObjective(opts, build_networks(opts, domain, group.device))
        run = make_run(opts, group, domain, net, objective)
    if resume_ckpt is not None:
        restore(run, resume_ckpt)
    train_set, test_set = ImageFolder(train_paths, input_size), ImageFolder(test_paths, input_size)
    if len(test_set) < group.world_size:
        raise E4EBenchError(f"{len(test_set)} held-out images for {group.world_size} processes; each needs one: "
                            "raise --test-fraction or pass --test-data")
    return run, train_set, test_set


def run_training(method: str, domain: str, overrides: dict, resume: str | None = None) -> dict | None:
    """Train (or resume) in this process, joining torchrun's group if there is one.

    `overrides` are TrainOptions fields given by the user; `resume` is "latest" (the newest
    iteration_N.pt under the output folder), a checkpoint path, or None. Returns the summary on
    rank 0 and None on the other ranks.
    """
    opts, resume_ckpt = resolve_options(method, domain, overrides, resume)
    group = start_process_group(opts.device)
    try:
        run, train_set, test_set = prepare(opts, group, resume_ckpt)
        summary = train(run, train_set, test_set)
    finally:
        group.close()
    return summary if group.is_main else None
