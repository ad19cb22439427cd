"""`convert`: NVIDIA StyleGAN2 pickles (ada-pytorch and TF release) to generators, with nothing in them run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tests.nvidia_pickles as nv
from tests.conftest import write_images
from e4e_bench import cli
from e4e_bench.checkpoints import load_generator, read_checkpoint
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.nvidia.convert import convert_pickle, read_nvidia_pickle
from tests.nvidia_synthesis import nvidia_synthesis
from tests.official_checkpoints import TINY_STAGE_DEPTHS

REPO = Path(__file__).resolve().parents[1]
KINDS = ("ada", "tf")


def varied_generator(seed: int, lr_mlp: float = 0.01) -> Generator:
    """Channels that change per resolution, three mapping layers, non-zero noise strengths and biases."""
    torch.manual_seed(seed)
    generator = Generator(32, style_dim=24, n_mlp=3, channels={4: 40, 8: 32, 16: 24, 32: 16}, lr_mlp=lr_mlp)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return generator.eval().requires_grad_(False)


def w_avg_of(generator: Generator) -> torch.Tensor:
    return generator.mean_latent(200, rng=torch.Generator().manual_seed(0))[0]


def nvidia_content(kind: str, g_ema: Generator, g: Generator | None = None, **options):
    """The pickled object of either format holding `g_ema` (and `g` as the training generator)."""
    if kind == "ada":
        return nv.ada_snapshot(nv.ada_generator(g_ema, w_avg_of(g_ema), **options),
                               nv.ada_generator(g, w_avg_of(g), **options) if g else None)
    return nv.tf_networks(nv.tf_generator(g_ema, w_avg_of(g_ema), **options),
                          nv.tf_generator(g, w_avg_of(g), name="G", **options) if g else None)


def renders(generator: Generator, seed: int = 3) -> torch.Tensor:
    codes = torch.randn(3, generator.n_latent, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return generator(codes, noise="const")


def assert_same_generator(converted: Generator, latent_avg: torch.Tensor, reference: Generator) -> None:
    torch.testing.assert_close(renders(converted), renders(reference))
    torch.testing.assert_close(latent_avg, w_avg_of(reference))


@pytest.mark.parametrize("protocol", [3, 4, "numpy1"])
def test_ada_pickle_converts_to_the_same_tensors(tmp_path, protocol):
    reference = varied_generator(0)
    src = nv.write_pickle(tmp_path / "snapshot.pkl", nvidia_content("ada", reference), protocol=3 if protocol == "numpy1" else protocol)
    if protocol == "numpy1":  # numpy < 2 names its rebuilders numpy.core.multiarray
        src.write_bytes(src.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    convert_pickle(src, tmp_path / "G.pt")
    converted, latent_avg = load_generator(tmp_path / "G.pt")  # strict=True
    assert converted.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    assert_same_generator(converted, latent_avg, reference)


def test_converted_ada_generator_renders_what_nvidia_synthesis_renders(tmp_path):
    reference = varied_generator(0)
    network = nv.ada_generator(reference, w_avg_of(reference))
    src = nv.write_pickle(tmp_path / "snapshot.pkl", nv.ada_snapshot(network))
    converted = read_nvidia_pickle(src).generator
    ws = torch.randn(3, converted.n_latent, converted.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        torch.testing.assert_close(converted(ws, noise="const"), nvidia_synthesis(network.state_dict(), ws))


def test_tf_pickle_renders_what_the_generator_with_its_weights_renders(tmp_path):
    reference = varied_generator(0)
    src = nv.write_pickle(tmp_path / "network-final.pkl", nvidia_content("tf", reference))
    convert_pickle(src, tmp_path / "G.pt")
    converted, latent_avg = load_generator(tmp_path / "G.pt")
    assert_same_generator(converted, latent_avg, reference)
    # TF's up-convolution kernels are stored flipped; an unflipped copy would not render the same.
    torch.testing.assert_close(converted.convs[2].conv.weight, reference.convs[2].conv.weight, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_mapping_learning_rate_other_than_001_is_folded_into_the_weights(tmp_path, kind):
    reference = varied_generator(0, lr_mlp=0.1)  # raw weights read with gains 0.1/sqrt(in) and 0.1
    src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content(kind, reference, lr_multiplier=0.1))
    conversion = read_nvidia_pickle(src)
    assert conversion.generator.init_kwargs["lr_mlp"] == 0.01
    z = torch.randn(5, reference.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(conversion.generator.mapping(z), reference.mapping(z))
    torch.testing.assert_close(renders(conversion.generator), renders(reference))


@pytest.mark.parametrize("kind", KINDS)
def test_which_chooses_the_moving_average_or_the_training_generator(tmp_path, kind):
    g_ema, g = varied_generator(0), varied_generator(1)
    src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content(kind, g_ema, g))
    torch.testing.assert_close(renders(read_nvidia_pickle(src).generator), renders(g_ema))
    torch.testing.assert_close(renders(read_nvidia_pickle(src, which="G").generator), renders(g))


@pytest.mark.parametrize("kind", KINDS)
def test_convert_command_prints_the_summary_and_its_output_serves_every_command(tmp_path, kind, tiny_domain, capsys):
    reference = varied_generator(0)
    src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content(kind, reference))
    out = tmp_path / "G.pt"
    assert cli.main(["convert", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {hashlib.sha256(src.read_bytes()).hexdigest()}" in printed
    assert "size 32, style_dim 24, n_mlp 3, n_latent 8, channels 4:40 8:32 16:24 32:16" in printed
    assert f"wrote: {out}" in printed
    ckpt = read_checkpoint(out)
    assert ckpt.keys() == {"g_ema", "latent_avg", "generator_config"}
    assert ckpt["generator_config"] == reference.init_kwargs

    np.save(tmp_path / "codes.npy", np.random.default_rng(0).standard_normal((2, 8, 24)).astype(np.float32))
    assert cli.main(["generate", "--generator", str(out), "--latents", str(tmp_path / "codes.npy"),
                     "--out", str(tmp_path / "generated"), "--device", "cpu"]) == 0
    with torch.inference_mode():
        images = reference(reference.mapping(torch.randn(2, 24, generator=torch.Generator().manual_seed(2))))
    write_images(tmp_path / "images", images)
    assert cli.main(["invert", "--method", "opt_w", "--domain", "tiny", "--generator", str(out), "--images",
                     str(tmp_path / "images"), "--out", str(tmp_path / "inv"), "--device", "cpu", "--steps", "1",
                     "--lpips-weight", "0", "--mse-weight", "1"]) == 0
    assert cli.main(["train", "--method", "e4e", "--domain", "tiny", "--data", str(tmp_path / "images"), "--out",
                     str(tmp_path / "train"), "--generator", str(out), "--max-steps", "1", "--batch-size", "1",
                     "--test-batch-size", "1", "--test-fraction", "0.5", "--device", "cpu", "--workers", "0",
                     "--test-workers", "0", "--random-weights", "--encoder-init", "random", "--encoder-stage-depths",
                     *map(str, TINY_STAGE_DEPTHS), "--id-lambda", "0", "--lpips-lambda", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 1


def test_conv_clamp_and_fp16_blocks_are_noted(tmp_path):
    reference = varied_generator(0)
    ada = nv.write_pickle(tmp_path / "ada.pkl", nvidia_content("ada", reference, conv_clamp=256, fp16_resolutions=(16, 32)))
    notes = read_nvidia_pickle(ada).summary()
    assert any(line.startswith("note: conv_clamp 256") for line in notes)
    assert any(line.startswith("note: fp16 blocks 16, 32") for line in notes)
    tf = nv.write_pickle(tmp_path / "tf.pkl", nvidia_content("tf", reference, conv_clamp=256, num_fp16_res=2))
    notes = read_nvidia_pickle(tf).summary()
    assert any(line.startswith("note: conv_clamp 256") for line in notes)
    assert any(line.startswith("note: num_fp16_res 2") for line in notes)


@pytest.mark.parametrize("kind, option", [("ada", {"c_dim": 4}), ("tf", {"label_size": 4})])
def test_conditional_generators_are_refused(tmp_path, kind, option):
    src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content(kind, varied_generator(0), **option))
    with pytest.raises(E4EBenchError, match=r"src\.pkl: G_ema is a conditional generator"):
        read_nvidia_pickle(src)


def test_generators_without_the_skip_architecture_are_refused(tmp_path):
    reference = varied_generator(0)
    resnet = nv.ada_generator(reference, w_avg_of(reference))
    resnet.synthesis.b8.add_module("skip", nv.module(nv.Persistent, {"weight": torch.ones(32, 40, 1, 1)}))
    src = nv.write_pickle(tmp_path / "resnet.pkl", nv.ada_snapshot(resnet))
    with pytest.raises(E4EBenchError, match=r"synthesis\.b8\.skip\.weight have no place"):
        read_nvidia_pickle(src)
    gs = nv.tf_generator(reference, w_avg_of(reference))
    synthesis = gs.state["components"]["synthesis"].state
    synthesis["variables"] = [(name, value) for name, value in synthesis["variables"] if not name.startswith("8x8/ToRGB")]
    src = nv.write_pickle(tmp_path / "orig.pkl", nv.tf_networks(gs))
    with pytest.raises(E4EBenchError, match=r"orig\.pkl: G_ema has no variable 'synthesis/8x8/ToRGB/weight'"):
        read_nvidia_pickle(src)


def test_files_that_are_not_nvidia_pickles_are_named(tmp_path, tiny_generator_ckpt):
    with pytest.raises(E4EBenchError, match="is a PyTorch checkpoint, not an NVIDIA pickle"):
        read_nvidia_pickle(tiny_generator_ckpt)
    (tmp_path / "text.pkl").write_bytes(b"not a pickle")
    with pytest.raises(E4EBenchError, match=r"text\.pkl is not a readable pickle"):
        read_nvidia_pickle(tmp_path / "text.pkl")
    nv.write_pickle(tmp_path / "list.pkl", [1, 2])
    with pytest.raises(E4EBenchError, match=r"list\.pkl holds a list; expected a stylegan2-ada-pytorch snapshot"):
        read_nvidia_pickle(tmp_path / "list.pkl")


def with_payload(kind: str, payload) -> object:
    """A valid pickle of `kind` with `payload` inside the first thing it rebuilds."""
    content = nvidia_content(kind, varied_generator(0))
    if kind == "ada":
        content["training_set_kwargs"]["path"] = payload
    else:
        content[2].state["static_kwargs"]["payload"] = payload
    return content


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", ["os.system", "builtins.exec"])
def test_a_pickle_that_calls_code_is_refused_and_nothing_runs(tmp_path, kind, call, capsys):
    marker = tmp_path / "ran"
    if call == "os.system":
        payload, name = nv.SystemCall(f"touch {marker}"), f"{os.system.__module__}.system"
    else:
        payload, name = nv.ExecCall(f"open({str(marker)!r}, 'w').close()"), "builtins.exec"
    src = nv.write_pickle(tmp_path / "evil.pkl", with_payload(kind, payload))
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "G.pt")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {src}: refused to unpickle the global {name};") and error.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "G.pt").exists()
    nv.load_naively(src)  # the payload is live: an ordinary unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_embedded_module_source_is_never_run(tmp_path, kind):
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\n"
    reference = varied_generator(0)
    if kind == "ada":
        src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content("ada", reference), module_src=source)
    else:
        src = nv.write_pickle(tmp_path / "src.pkl", nvidia_content("tf", reference, build_module_src=source))
    convert_pickle(src, tmp_path / "G.pt")
    assert not marker.exists()
    torch.testing.assert_close(renders(load_generator(tmp_path / "G.pt")[0]), renders(reference))
    nv.load_naively(src)  # NVIDIA's own loaders would have run it
    assert marker.exists()


def test_the_convert_command_module_imports_no_torch():
    code = "import sys, e4e_bench.commands.convert; sys.exit('torch' in sys.modules)"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
