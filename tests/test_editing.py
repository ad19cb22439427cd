import re

import numpy as np
import pytest
import torch
from torch import nn

from e4e_bench import cli
from e4e_bench.editing import ganspace, parse_direction
from e4e_bench.editing.ganspace import NAMED_EDITS, PCA, fit_pca
from e4e_bench.editing.sefa import factorise
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator

STYLE_DIM = 32


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(16, style_dim=STYLE_DIM, n_mlp=2, channels={4: 8, 8: 8, 16: 8}).eval()


@pytest.fixture
def pca_file(tmp_path):
    """An e4e-format PCA file: random orthonormal components, decreasing std, a nonzero mean."""
    rng = torch.Generator().manual_seed(1)
    components, _ = torch.linalg.qr(torch.randn(STYLE_DIM, STYLE_DIM, generator=rng))
    pca = PCA(components.T.contiguous(), torch.linspace(3.0, 0.5, STYLE_DIM), torch.randn(STYLE_DIM, generator=rng))
    path = tmp_path / "toy_pca.pt"
    torch.save(pca.state(), path)
    return path, pca


def test_interfacegan_shared_and_per_row_files_load(tmp_path, generator):
    rng = torch.Generator().manual_seed(2)
    normal = torch.randn(1, STYLE_DIM, generator=rng)
    per_row = torch.randn(1, generator.n_latent, STYLE_DIM, generator=rng)
    torch.save(normal, tmp_path / "shared.pt")
    np.save(tmp_path / "shared.npy", normal.numpy())
    torch.save(per_row, tmp_path / "per_row.pt")
    codes = torch.randn(3, generator.n_latent, STYLE_DIM, generator=rng)

    for name in ("shared.pt", "shared.npy"):
        edited = parse_direction(f"interfacegan:{tmp_path / name}", generator).apply(codes, 3.0)
        torch.testing.assert_close(edited, codes + 3.0 * normal[:, None, :])
    edited = parse_direction(f"interfacegan:{tmp_path / 'per_row.pt'}", generator).apply(codes, -2.0)
    torch.testing.assert_close(edited, codes - 2.0 * per_row)


def test_interfacegan_rejects_wrong_shapes(tmp_path, generator):
    torch.save(torch.randn(1, STYLE_DIM + 1), tmp_path / "wide.pt")
    torch.save(torch.randn(1, generator.n_latent + 1, STYLE_DIM), tmp_path / "deep.pt")
    for name in ("wide.pt", "deep.pt", "missing.pt"):
        with pytest.raises(E4EBenchError, match="InterFaceGAN|does not exist"):
            parse_direction(f"interfacegan:{tmp_path / name}", generator)


def coordinates(codes: torch.Tensor, pca: PCA, k: int) -> torch.Tensor:
    return (codes - pca.mean) @ pca.components[k] / pca.std[k]


def test_ganspace_sets_row0_coordinate_on_rows_start_to_end(pca_file, generator):
    path, pca = pca_file
    w = torch.randn(4, STYLE_DIM, generator=torch.Generator().manual_seed(3))
    codes = w[:, None].expand(-1, generator.n_latent, -1)
    edited = parse_direction(f"ganspace:{path}:2:1:4", generator).apply(codes, 5.0)

    torch.testing.assert_close(coordinates(edited[:, 1:4], pca, 2), torch.full((4, 3), 5.0))
    torch.testing.assert_close(edited[:, [0, 4, 5]], codes[:, [0, 4, 5]])
    # Only component 2 moves: the edit is orthogonal to every other component.
    others = [k for k in range(STYLE_DIM) if k != 2]
    torch.testing.assert_close((edited - codes)[:, 1:4] @ pca.components[others].T, torch.zeros(4, 3, len(others)))


def test_ganspace_measures_the_coordinate_on_row_zero_only(pca_file, generator):
    path, pca = pca_file
    codes = torch.randn(2, generator.n_latent, STYLE_DIM, generator=torch.Generator().manual_seed(4))
    edited = parse_direction(f"ganspace:{path}:0:2:5", generator).apply(codes, -1.5)
    shift = coordinates(edited[:, 2:5], pca, 0) - coordinates(codes[:, 2:5], pca, 0)
    torch.testing.assert_close(shift, (-1.5 - coordinates(codes[:, 0], pca, 0))[:, None].expand(-1, 3))


def test_ganspace_additive_form_is_undone_by_its_negative(pca_file, generator):
    path, pca = pca_file
    direction = parse_direction(f"ganspace:{path}:1:0:3", generator)
    codes = torch.randn(2, generator.n_latent, STYLE_DIM, generator=torch.Generator().manual_seed(5))
    edited = direction.add(codes, 4.0)
    torch.testing.assert_close(edited[:, :3] - codes[:, :3], (4.0 * pca.std[1] * pca.components[1]).expand(2, 3, -1))
    torch.testing.assert_close(edited[:, 3:], codes[:, 3:])
    torch.testing.assert_close(direction.add(edited, -4.0), codes)


def test_spec_files_can_be_registered_assets(pca_file, generator, monkeypatch):
    from e4e_bench import assets

    path, pca = pca_file
    monkeypatch.setenv("E4E_BENCH_HOME", str(path.parent))
    with assets.ASSETS.registered("toy-pca", assets.Asset("toy-pca", path.name, (), "pca", "a toy PCA")), \
            assets.ASSETS.registered("toy-age", assets.Asset("toy-age", "age.pt", (), "direction", "a toy age")):
        direction = parse_direction("ganspace:toy-pca:1:0:2", generator)
        torch.testing.assert_close(direction.offset[0], pca.std[1] * pca.components[1])
        with pytest.raises(E4EBenchError, match="assets fetch toy-age"):
            parse_direction("interfacegan:toy-age", generator)


def test_ganspace_named_edit_brings_its_tuple(pca_file, generator):
    path, _ = pca_file
    direction = parse_direction(f"ganspace:{path}:viewpoint", generator)
    viewpoint = NAMED_EDITS["viewpoint"]
    assert direction.default_strength == viewpoint.strength == 2.0
    rows = direction.offset.norm(dim=1) > 0
    assert rows.tolist() == [viewpoint.start <= row < viewpoint.end for row in range(generator.n_latent)]
    with pytest.raises(E4EBenchError, match="rows 9:11"):
        parse_direction(f"ganspace:{path}:grass", generator)  # this tiny generator has 6 rows


def test_ganspace_named_edit_of_another_pca_is_an_error_naming_that_pcas_edits(pca_file, generator, capsys):
    path, _ = pca_file
    cars = path.with_name("cars_pca.pt")
    path.rename(cars)
    with pytest.raises(E4EBenchError, match="smile is an edit of ffhq_pca.pt; the named edits of cars_pca.pt are "
                                            "viewpoint, cube, color, grass$"):
        parse_direction(f"ganspace:{cars}:smile", generator)
    np.save(path.parent / "codes.npy", np.zeros((1, 64), dtype=np.float32))
    argv = ["edit", "--latents", str(path.parent / "codes.npy"), "--generator", "toy-generator",
            "--out", str(path.parent / "edits"), "--device", "cpu"]
    assert cli.main([*argv, "--direction", "ganspace:toy-ganspace:viewpoint"]) == 2
    assert capsys.readouterr().err == ("error: bad direction 'ganspace:toy-ganspace:viewpoint': viewpoint is an edit of "
                                       "cars_pca.pt; the named edits of toy_ganspace_pca.pt are size, sky, hue\n")
    assert cli.main([*argv, "--direction", "ganspace:toy-ganspace:size"]) == 0


class LinearMapping(nn.Module):
    """A stand-in generator whose W is z scaled per axis and shifted: its PCA is known in closed form."""

    def __init__(self, scales: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.style_dim = len(scales)
        self.scales = nn.Parameter(scales, requires_grad=False)
        self.shift = shift

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scales + self.shift


def test_fitted_pca_recovers_known_axes():
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    shift = torch.arange(6.0)
    pca = fit_pca(LinearMapping(scales, shift), n_samples=20_000, n_components=4, batch_size=5_000)
    torch.testing.assert_close(pca.components @ pca.components.T, torch.eye(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(pca.components.abs(), torch.eye(6)[:4], atol=0.03, rtol=0)
    torch.testing.assert_close(pca.std, scales[:4], rtol=0.03, atol=0)
    torch.testing.assert_close(pca.mean, shift, atol=0.1, rtol=0)


def test_fitted_pca_of_a_generator_is_usable_as_spec(generator):
    direction = parse_direction("ganspace:fit:0:0:2", generator)
    assert torch.all(direction.offset[:2].norm(dim=1) > 0) and torch.all(direction.offset[2:] == 0)


def test_sefa_directions_are_orthonormal_sorted_and_match_svd(generator):
    eigenvalues, directions = factorise(generator, range(1, 4))
    torch.testing.assert_close(directions @ directions.T, torch.eye(STYLE_DIM), atol=1e-5, rtol=0)
    assert torch.all(eigenvalues[:-1] >= eigenvalues[1:])
    # Independent check: SVD of the stacked, row-normalised modulation weights of rows 1..3 (convs.0-2).
    state = generator.state_dict()
    weight = np.concatenate([state[f"convs.{i}.conv.modulation.weight"].double().numpy() for i in range(3)])
    weight /= np.linalg.norm(weight, axis=1, keepdims=True)
    _, singular, right = np.linalg.svd(weight)
    np.testing.assert_allclose(eigenvalues[: len(singular)].numpy(), singular**2, rtol=1e-4)
    np.testing.assert_allclose(np.abs(directions[0].double().numpy() @ right[0]), 1.0, rtol=1e-5)


def test_sefa_edits_the_rows_it_factorised(generator):
    direction = parse_direction("sefa:0:1:4", generator)
    _, directions = factorise(generator, range(1, 4))
    codes = torch.zeros(1, generator.n_latent, STYLE_DIM)
    edited = direction.apply(codes, 2.0)
    torch.testing.assert_close(edited[0, 1:4], 2.0 * directions[0].expand(3, -1))
    assert torch.all(edited[0, [0, 4, 5]] == 0)
    default_rows = parse_direction("sefa:3", generator).offset.norm(dim=1) > 0
    assert default_rows.tolist() == [True] * (generator.n_latent - 1) + [False]


@pytest.mark.parametrize(
    "spec",
    ["stylespace:1", "sefa", "sefa:x", "sefa:0:1", "sefa:0:0:6", "sefa:99", "ganspace:fit:0:4:2", "ganspace:fit:smirk"],
)
def test_bad_specs_are_user_errors(spec, generator):
    with pytest.raises(E4EBenchError):
        parse_direction(spec, generator)


def test_edit_cli_end_to_end(tmp_path, tiny_generator, tiny_generator_ckpt, capsys):
    from PIL import Image

    from e4e_bench.data import to_uint8

    w = tiny_generator.mapping(torch.randn(3, tiny_generator.style_dim, generator=torch.Generator().manual_seed(6)))
    np.save(tmp_path / "w.npy", w.numpy())  # W codes are broadcast to W+ before the edit
    out = tmp_path / "edited"
    argv = ["edit", "--latents", str(tmp_path / "w.npy"), "--generator", str(tiny_generator_ckpt),
            "--direction", "sefa:0:1:4", "--strength", "2.5", "--out", str(out), "--device", "cpu"]
    assert cli.main(argv) == 0

    expected_codes = parse_direction("sefa:0:1:4", tiny_generator).add(tiny_generator.to_wplus(w), 2.5)
    torch.testing.assert_close(torch.from_numpy(np.load(out / "latents.npy")), expected_codes)
    with torch.inference_mode():
        expected_pixels = to_uint8(tiny_generator(expected_codes, noise="const")).permute(0, 2, 3, 1).numpy()
    written = np.stack([np.asarray(Image.open(out / f"{i:05d}.png")) for i in range(3)])
    assert np.abs(written.astype(int) - expected_pixels.astype(int)).max() <= 1

    torch.save(torch.randn(1, tiny_generator.style_dim), tmp_path / "normal.pt")
    argv = argv[:5] + ["--direction", f"interfacegan:{tmp_path / 'normal.pt'}", "--out", str(out), "--device", "cpu"]
    assert cli.main(argv) == 2
    assert "pass --strength" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_directions_holding_nan_or_inf_are_refused_by_name(bad, tmp_path, pca_file, generator):
    normal = torch.randn(1, STYLE_DIM)
    normal[0, 5] = bad
    np.save(tmp_path / "normal.npy", normal.numpy())
    _, pca = pca_file
    for field in ("components", "std", "mean"):
        values = {"components": pca.components.clone(), "std": pca.std.clone(), "mean": pca.mean.clone()}
        values[field].view(-1)[-1] = bad  # the last entry: outside component 0, so only a whole-file check sees it
        torch.save(PCA(**values).state(), tmp_path / f"{field}_pca.pt")
    specs = [f"interfacegan:{tmp_path / 'normal.npy'}"] + [
        f"ganspace:{tmp_path / f'{field}_pca.pt'}:0:0:3" for field in ("components", "std", "mean")]
    for spec in specs:
        with pytest.raises(E4EBenchError, match=f"bad direction {re.escape(repr(spec))}: its .* NaN or infinite"):
            parse_direction(spec, generator)


def test_ganspace_component_without_spread_is_refused(tmp_path, pca_file, generator):
    _, pca = pca_file
    std = pca.std.clone()
    std[2] = 0.0
    torch.save(PCA(pca.components, std, pca.mean).state(), tmp_path / "flat_pca.pt")
    with pytest.raises(E4EBenchError, match="component 2 has standard deviation 0.0"):
        parse_direction(f"ganspace:{tmp_path / 'flat_pca.pt'}:2:0:3", generator)
    parse_direction(f"ganspace:{tmp_path / 'flat_pca.pt'}:1:0:3", generator)  # the other components still work


def test_fit_ganspace_command_writes_a_pca_the_edit_command_reads(tmp_path, tiny_generator, tiny_generator_ckpt):
    pca_path = tmp_path / "pca.pt"
    assert cli.main(["fit-ganspace", "--generator", str(tiny_generator_ckpt), "--out", str(pca_path),
                     "--samples", "2000", "--components", "8"]) == 0
    pca = ganspace.load_pca(pca_path)
    # Orthonormal rows by decreasing variance, as IncrementalPCA gives them.
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(8), atol=1e-4)
    assert (pca.std[:-1] >= pca.std[1:]).all()
    direction = parse_direction(f"ganspace:{pca_path}:0:0:2", tiny_generator)
    assert torch.allclose(direction.offset[0], pca.std[0] * pca.components[0])
