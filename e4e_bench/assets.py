"""The registry of pretrained files: where each comes from, how to check it, where it is cached.

Files live in `$E4E_BENCH_HOME` (default `~/.cache/e4e_bench`); on an air-gapped machine copy
them there by hand under the listed file names. Where the publisher gives no checksum the
registry says so (`sha256=None`): the first `fetch` or `verify` records the file's hash in
`hashes.json` beside the files, and later checks compare against that record. Such a file is only
ever "unverified": the record vouches for nothing but the file it was taken from.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from e4e_bench.errors import E4EBenchError
from e4e_bench.io import atomic_write, write_text
from e4e_bench.registry import Registry

HASH_RECORD = "hashes.json"
PACKAGED_DIR = ("e4e_bench.toy", "assets")  # (package, folder) of the assets that ship with e4e-bench


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    urls: tuple[str, ...]
    format: str  # what loads it: rosinality-generator, e4e-psp-checkpoint, ir-se50, moco-v2, ...
    description: str
    sha256: str | None = None  # full digest when published
    sha256_prefix: str | None = None  # the 8-hex prefix torchvision-style file names carry
    size: int | None = None  # bytes, when known
    licence: str = "see the publisher"
    archive_member: str | None = None  # the file to keep when the download is a zip pack
    packaged: bool = False  # ships inside the package (PACKAGED_DIR): never downloaded, always there

    @property
    def path(self) -> Path:
        """Where the file is: inside the package, or in the cache."""
        if self.packaged:
            return Path(str(importlib.resources.files(PACKAGED_DIR[0]).joinpath(PACKAGED_DIR[1], self.filename)))
        return cache_home() / self.filename


def drive(file_id: str) -> str:
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


E4E_RAW = "https://raw.githubusercontent.com/omertov/encoder4editing/main/"
# (name, path in the e4e repository, description, sha256, bytes), measured at commit 99ea505.
E4E_EDITING_FILES = (
    ("e4e-interfacegan-age", "editings/interfacegan_directions/age.pt", "InterFaceGAN age direction [1, 512] (FFHQ)",
     "50074516b1629707d89b5e43d6b8abd1792212fa3b961a87a11323d6a5222ae0", 2808),
    ("e4e-interfacegan-smile", "editings/interfacegan_directions/smile.pt", "InterFaceGAN smile direction [1, 512] (FFHQ)",
     "817a7e732b59dee9eba862bec8bd7e8373568443bc9f9731a21cf9b0356f0653", 2808),
    ("e4e-interfacegan-pose", "editings/interfacegan_directions/pose.pt", "InterFaceGAN pose direction [1, 18, 512] (FFHQ)",
     "736e0eacc8488fa0b020a2e7bd256b957284c364191dfea693705e5d06d43e7d", 37624),
    ("e4e-ganspace-cars", "editings/ganspace_pca/cars_pca.pt", "GANSpace PCA of the car generator's W (comp, std, mean)",
     "a5c3bae61ecd85de077fbbf103f5f30cf4b7676fe23a8508166eaf2ce73c8392", 167562),
    ("e4e-ganspace-ffhq", "editings/ganspace_pca/ffhq_pca.pt", "GANSpace PCA of the FFHQ generator's W (comp, std, mean)",
     "4d7f9df1c96180d9026b9cb8d04753579fbf385f321a9d0e263641601c5e5d36", 167562),
)

# (name, file in e4e_bench/toy/assets, description, sha256, bytes): the toy domain, shipped with the package.
# `toy-gan`, `fit-ganspace` and `train --domain toy` rebuild them (README: the toy domain from scratch).
TOY_FILES = (
    ("toy-generator", "toy_generator.pt", "toy StyleGAN2, 32 px, style_dim 64 (EMA after 128.5 kimg of toy-gan)",
     "91493c17e74cd4ba4e039c7714c4c4f79805aecc0aae6b8102e2cb16331dd1c2", 1326917, "rosinality-generator"),
    ("toy-ganspace", "toy_ganspace_pca.pt", "GANSpace PCA of the toy generator's W, 64 components",
     "b4edd9a7e12170eb768662334b367a10146953765d76d9515365e2a19195b24f", 18849, "edit-direction"),
    ("toy-e4e", "toy_e4e.pt", "toy e4e encoder + decoder (train --domain toy, 8,000 steps, best held-out loss)",
     "907c335a458c6fba08304a848a495b7ae92487cfe3fc9e5ab801154bca9811e3", 10805737, "e4e-psp-checkpoint"),
    ("toy-psp", "toy_psp.pt", "toy pSp encoder + decoder (train --domain toy, 8,000 steps, best held-out loss)",
     "799ca00f366641e9d7fdc084497bd64c1f92dabc0703451058f83a98cbe1dcd2", 10805737, "e4e-psp-checkpoint"),
    ("toy-restyle-psp", "toy_restyle_psp.pt", "toy ReStyle-pSp encoder + decoder (train --domain toy, 2,500 steps, best "
     "held-out loss)", "6996edcc6647e38d048545fc6a5fae19cf058e8ebd3a07f108ab0218142fd75b", 7147033, "e4e-psp-checkpoint"),
    ("toy-restyle-e4e", "toy_restyle_e4e.pt", "toy ReStyle-e4e encoder + decoder (train --domain toy, 3,500 steps, best "
     "held-out loss)", "88e21eeb3b0712ff1f85751e9f87132a8a2af8b5f46719005fa76525dfcebf30", 7147097, "e4e-psp-checkpoint"),
    ("toy-w-encoder", "toy_w_encoder.pt", "toy HyperStyle W encoder (WEncoder) + decoder (train --method e4e "
     "--encoder-type WEncoder --domain toy, step 1,000: the one toy-hyperstyle was trained over)",
     "da852733c5001ef97ef13050788c2f1c54da6ae9c736e223432abb31b67c4526", 4295845, "e4e-psp-checkpoint"),
    ("toy-hyperstyle", "toy_hyperstyle.pt", "toy HyperStyle hypernetwork + decoder (train --method hyperstyle --domain "
     "toy over toy-w-encoder, 3,000 steps, best held-out loss at 1,500)",
     "feafa45da176714795e12c5697e1fcfd26ea2633af9021d813ddc125e9ff7a9d", 3483977, "hyperstyle-checkpoint"),
)

# (name, file name, Drive id, description): ReStyle's released encoder + decoder files (RS README, commit 5e80276);
# the publisher gives no sizes or hashes. AFHQ Wild has no domain here: pass its file as --checkpoint.
RESTYLE_FILES = (
    ("restyle-psp-ffhq", "restyle_psp_ffhq_encode.pt", "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE", "ReStyle-pSp, FFHQ (IR-SE50)"),
    ("restyle-psp-cars", "restyle_psp_cars_encode.pt", "1zJHqHRQ8NOnVohVVCGbeYMMr6PDhRpPR", "ReStyle-pSp, LSUN cars (ResNet-34)"),
    ("restyle-psp-church", "restyle_psp_church_encode.pt", "1bcxx7mw-1z7dzbJI_z7oGpWG1oQAvMaD",
     "ReStyle-pSp, LSUN church (ResNet-34)"),
    ("restyle-psp-afhq-wild", "restyle_psp_afhq_wild_encode.pt", "1GyFXVTNDUw3IIGHmGS71ChhJ1Rmslhk7",
     "ReStyle-pSp, AFHQ Wild (ResNet-34)"),
    ("restyle-e4e-ffhq", "restyle_e4e_ffhq_encode.pt", "1e2oXVeBPXMQoUoC_4TNwAWpOPpSEhE_e", "ReStyle-e4e, FFHQ (IR-SE50)"),
    ("restyle-e4e-cars", "restyle_e4e_cars_encode.pt", "1v6Yi-Yne6JX0Pyas6XPS83IzKKUvCe8r", "ReStyle-e4e, LSUN cars (ResNet-34)"),
    ("restyle-e4e-church", "restyle_e4e_church_encode.pt", "1sCRzbM1fGTgTbWO87jP_rxApw-tS0CH_",
     "ReStyle-e4e, LSUN church (ResNet-34)"),
    ("restyle-e4e-horse", "restyle_e4e_horse_encode.pt", "19_sUpTYtJmhSAolKLm3VgI-ptYqd-hgY",
     "ReStyle-e4e, LSUN horse (ResNet-34)"),
    ("restyle-e4e-afhq-wild", "restyle_e4e_afhq_wild_encode.pt", "1HQlUPKirShHyL3kGnwVRjhfcb-j9s4V3",
     "ReStyle-e4e, AFHQ Wild (ResNet-34)"),
)

# (name, file name, Drive id, format, description): HyperStyle's released files (its README, commit a723c73),
# each domain's hypernetwork + decoder and the W encoder it was trained with; no sizes or hashes published.
HYPERSTYLE_FILES = (
    ("hyperstyle-faces", "hyperstyle_ffhq.pt", "1C3dEIIH1y8w1-zQMCyx7rDF0ndswSXh4", "hyperstyle-checkpoint",
     "HyperStyle hypernetwork + decoder, FFHQ"),
    ("hyperstyle-cars", "hyperstyle_cars.pt", "1WZ7iNv5ENmxXFn6dzPeue1jQGNp6Nr9d", "hyperstyle-checkpoint",
     "HyperStyle hypernetwork + decoder, Stanford Cars (LSUN car generator)"),
    ("hyperstyle-afhq-wild", "hyperstyle_afhq_wild.pt", "1OMAKYRp3T6wzGr0s3887rQK-5XHlJ2gp", "hyperstyle-checkpoint",
     "HyperStyle hypernetwork + decoder, AFHQ Wild"),
    ("hyperstyle-w-encoder-faces", "faces_w_encoder.pt", "1M-hsL3W_cJKs77xM1mwq2e9-J0_m7rHP", "e4e-psp-checkpoint",
     "HyperStyle's W encoder (WEncoder, trained as e4e into W), FFHQ"),
    ("hyperstyle-w-encoder-cars", "cars_w_encoder.pt", "1GZke8pfXMSZM9mfT-AbP1Csyddf5fas7", "e4e-psp-checkpoint",
     "HyperStyle's W encoder (WEncoder, trained as e4e into W), Stanford Cars"),
    ("hyperstyle-w-encoder-afhq-wild", "afhq_wild_w_encoder.pt", "1MhEHGgkTpnTanIwuHYv46i6MJeet2Nlr",
     "e4e-psp-checkpoint", "HyperStyle's W encoder (WEncoder, trained as e4e into W), AFHQ Wild"),
)


def _load_plugin_assets() -> None:
    from e4e_bench.plugins import ASSET_GROUP, load_plugins

    load_plugins(ASSET_GROUP, lambda module, point: None)  # importing a plug-in's module registers its files


ASSETS: Registry[Asset] = Registry("asset", re.compile(r"^[a-z0-9][a-z0-9.-]*$"), load=_load_plugin_assets)


def register_asset(asset: Asset) -> Asset:
    return ASSETS.register(asset.name, asset)


for _asset in (
        Asset("stylegan2-ffhq", "stylegan2-ffhq-config-f.pt", (drive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"),),
              "rosinality-generator", "StyleGAN2 FFHQ config-f, 1024 px (rosinality conversion)", licence="NVIDIA Source Code License-NC"),
        Asset("stylegan2-car", "stylegan2-car-config-f.pt", (drive("1UmMHHB3DU1trTB8_9Fjkck5ZwArnD81B"),),
              "rosinality-generator", "StyleGAN2 LSUN car config-f, 512 px, content rows 64:448", licence="NVIDIA Source Code License-NC"),
        Asset("stylegan2-horse", "stylegan2-horse-config-f.pt", (drive("1bM7ms1tWCucnySjiS6-NNrPJGDkqQQWi"),),
              "rosinality-generator", "StyleGAN2 LSUN horse config-f, 256 px", licence="NVIDIA Source Code License-NC"),
        Asset("stylegan2-church", "stylegan2-church-config-f.pt", (drive("1ZSZOFtw5wZfPhWEzHFB9LI__bikaHsn6"),),
              "rosinality-generator", "StyleGAN2 LSUN church config-f, 256 px", licence="NVIDIA Source Code License-NC"),
        Asset("e4e-ffhq", "e4e_ffhq_encode.pt", (drive("1cUv_reLE6k3604or78EranS7XzuVMWeO"),),
              "e4e-psp-checkpoint", "official e4e encoder + decoder, FFHQ", licence="MIT (code); weights per the e4e authors"),
        Asset("e4e-cars", "e4e_cars_encode.pt", (drive("17faPqBce2m1AQeLCLHUVXaDfxMRU2QcV"),),
              "e4e-psp-checkpoint", "official e4e encoder + decoder, LSUN cars", licence="MIT (code); weights per the e4e authors"),
        Asset("e4e-horse", "e4e_horse_encode.pt", (drive("1TkLLnuX86B_BMo2ocYD0kX9kWh53rUVX"),),
              "e4e-psp-checkpoint", "official e4e encoder + decoder, LSUN horse", licence="MIT (code); weights per the e4e authors"),
        Asset("e4e-church", "e4e_church_encode.pt", (drive("1-L0ZdnQLwtdy6-A_Ccgq5uNJGTqE7qBa"),),
              "e4e-psp-checkpoint", "official e4e encoder + decoder, LSUN church", licence="MIT (code); weights per the e4e authors"),
        Asset("psp-ffhq", "psp_ffhq_encode.pt", (drive("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0"),),
              "e4e-psp-checkpoint", "official pSp encoder + decoder, FFHQ inversion", licence="MIT (code); weights per the pSp authors"),
        *(
            Asset(name, filename, (drive(file_id),), "e4e-psp-checkpoint", f"official {description} encoder + decoder",
                  licence="MIT (code); weights per the ReStyle authors")
            for name, filename, file_id, description in RESTYLE_FILES
        ),
        *(
            Asset(name, filename, (drive(file_id),), file_format, f"official {description}",
                  licence="MIT (code); weights per the HyperStyle authors")
            for name, filename, file_id, file_format, description in HYPERSTYLE_FILES
        ),
        *(
            Asset(name, path.rsplit("/", 1)[1], (E4E_RAW + path,), "edit-direction", description,
                  sha256=digest, size=size, licence="MIT (encoder4editing)")
            for name, path, description, digest, size in E4E_EDITING_FILES
        ),
        Asset("arcface-ir-se50", "model_ir_se50.pth", (drive("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn"),),
              "ir-se50", "ArcFace IR-SE50 (TreB1eN), e4e/pSp identity loss and encoder initialisation"),
        Asset("moco-v2", "moco_v2_800ep_pretrain.pt", (drive("18rLcNGdteX5LwT7sv_F7HWr12HpVEzVe"),),
              "moco-v2", "MoCo v2 ResNet-50, 800 epochs (module.encoder_q.*), similarity beyond faces", licence="CC-BY-NC 4.0"),
        Asset("arcface-w600k-r50", "w600k_r50.onnx", ("https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",),
              "insightface-onnx", "insightface ArcFace ResNet50@WebFace600K (from the buffalo_l pack), identity metric for faces",
              licence="non-commercial research (insightface)", archive_member="w600k_r50.onnx"),
        Asset("lpips-alex", "alexnet-owt-7be5be79.pth", ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
              "torchvision-alexnet", "torchvision AlexNet ImageNet weights, the LPIPS (alex) backbone",
              sha256_prefix="7be5be79", licence="BSD-3-Clause"),
        Asset("resnet34-imagenet", "resnet34-333f7ec4.pth", ("https://download.pytorch.org/models/resnet34-333f7ec4.pth",),
              "torchvision-resnet34", "torchvision ResNet-34 ImageNet weights, ReStyle's encoder initialisation beyond faces",
              sha256_prefix="333f7ec4", licence="BSD-3-Clause"),
        Asset("lpips-vgg", "vgg16-397923af.pth", ("https://download.pytorch.org/models/vgg16-397923af.pth",),
              "torchvision-vgg16", "torchvision VGG16 ImageNet weights, the LPIPS (vgg) backbone used by the projectors",
              sha256_prefix="397923af", licence="BSD-3-Clause"),
        Asset("inception-fid", "pt_inception-2015-12-05-6726825d.pth",
              ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",),
              "pytorch-fid-inception", "pytorch-fid InceptionV3 (TF FID weights), 2048-d pool features",
              sha256_prefix="6726825d", licence="Apache-2.0"),
        *(
            Asset(name, filename, (), kind, description, sha256=digest, size=size, licence="MIT (e4e-bench)", packaged=True)
            for name, filename, description, digest, size, kind in TOY_FILES
        ),
):
    register_asset(_asset)


def cache_home() -> Path:
    return Path(os.environ.get("E4E_BENCH_HOME", Path.home() / ".cache" / "e4e_bench")).expanduser()


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise E4EBenchError(f"unknown asset {name!r}; `python -m e4e_bench assets list` shows the registry")
    return ASSETS[name]


def asset_path(name: str) -> Path:
    """Path of a cached asset; a clear error naming the fetch command when it is not there."""
    asset = get_asset(name)
    path = asset.path
    if not path.is_file():
        raise E4EBenchError(
            f"{asset.description}: {path} is missing; run `{fetch_command([name])}` "
            f"or copy {asset.filename} into {cache_home()} (set E4E_BENCH_HOME to change it)"
        )
    return path


def resolve_file(text: str) -> Path:
    """What a file flag names: an existing file, else a registered asset's local copy (`--generator toy-generator`)."""
    path = Path(text)
    if path.is_file():
        return path
    if text in ASSETS:
        return asset_path(text)
    raise E4EBenchError(f"{text} is not a file, nor the name of a registered asset; pass a file path or an asset "
                        "name of `python -m e4e_bench assets list`")


def missing_assets(names: Sequence[str]) -> list[str]:
    """The assets among `names` whose file is not on this machine."""
    return [name for name in names if not get_asset(name).path.is_file()]


def fetch_command(names: Sequence[str]) -> str:
    return f"python -m e4e_bench assets fetch {' '.join(names)}"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def recorded_hashes() -> dict[str, str]:
    record = cache_home() / HASH_RECORD
    return json.loads(record.read_text()) if record.is_file() else {}


def record_hash(name: str, digest: str) -> None:
    hashes = recorded_hashes() | {name: digest}
    write_text(cache_home() / HASH_RECORD, json.dumps(hashes, indent=2, sort_keys=True))


VERIFIED, UNVERIFIED, MISMATCHED, MISSING = "verified", "unverified", "mismatched", "missing"


@dataclass(frozen=True)
class HashCheck:
    status: str  # VERIFIED (published hash), UNVERIFIED (only a locally recorded hash), MISMATCHED or MISSING
    detail: str  # what the status rests on, in words


def check_hash(asset: Asset, digest: str) -> HashCheck:
    """Compare a file's sha256 with the published one, else with the one recorded here (recording it
    when there is none: that hash is only as trustworthy as the file it was taken from)."""
    if asset.sha256 is not None:
        if digest != asset.sha256:
            return HashCheck(MISMATCHED, f"sha256 {digest} is not the published {asset.sha256}")
        return HashCheck(VERIFIED, "matches the published sha256")
    if asset.sha256_prefix is not None and not digest.startswith(asset.sha256_prefix):
        return HashCheck(MISMATCHED, f"sha256 {digest} does not start with the published {asset.sha256_prefix}")
    if asset.sha256_prefix is not None:
        return HashCheck(VERIFIED, f"matches the published sha256 prefix {asset.sha256_prefix}")
    recorded = recorded_hashes().get(asset.name)
    if recorded is None:
        record_hash(asset.name, digest)
        return HashCheck(UNVERIFIED, f"no published sha256; recorded this file's sha256 {digest[:12]}... in "
                                     f"{HASH_RECORD}, later checks compare against it")
    if digest != recorded:
        return HashCheck(MISMATCHED, f"sha256 {digest} is not the {recorded} recorded in {HASH_RECORD}")
    return HashCheck(UNVERIFIED, f"no published sha256; matches the sha256 recorded locally in {HASH_RECORD}")


@dataclass(frozen=True)
class Fetched:
    path: Path
    check: HashCheck | None  # None: the file was already cached and was not downloaded again
    member: str | None = None  # the archive member kept, for zip packs


def fetch(name: str, force: bool = False) -> Fetched:
    """Download an asset to a temporary name, check its hash, then rename it into the cache."""
    asset = get_asset(name)
    target = asset.path
    if target.is_file() and (not force or asset.packaged):
        return Fetched(target, None)
    errors = []
    for url in asset.urls:
        try:
            with atomic_write(target) as out:
                download(url, out, asset.filename)
                member = extract_member(out, asset.archive_member) if asset.archive_member is not None else None
                check = check_hash(asset, sha256_of(Path(out.name)))
                if check.status == MISMATCHED:
                    raise _Mismatch(check.detail)
            return Fetched(target, check, member)
        except (_Mismatch, OSError) as err:
            errors.append(f"{url}: {err}")
    raise E4EBenchError(
        f"could not download {asset.filename} ({'; '.join(errors)}); download it by hand into {cache_home()}"
    )


class _Mismatch(Exception):
    """A download whose hash is wrong: abandons its atomic write so that nothing is kept."""


def download(url: str, out: IO[bytes], label: str) -> None:
    """Stream `url` into the open file `out`, with a progress bar."""
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=label) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))
    out.flush()


def extract_member(archive: IO[bytes], member: str) -> str:
    """Replace a downloaded zip, open for writing, by the one member we keep (matched by base name);
    returns its name in the pack."""
    try:
        with zipfile.ZipFile(archive.name) as pack:
            matches = [n for n in pack.namelist() if Path(n).name == member]
            if len(matches) != 1:
                found = ", ".join(matches) if matches else "none"
                raise OSError(f"the downloaded pack should hold exactly one {member}; it holds {found}")
            data = pack.read(matches[0])
    except zipfile.BadZipFile as err:
        raise OSError(f"download is not a zip archive ({err})") from None
    archive.seek(0)
    archive.truncate()
    archive.write(data)
    archive.flush()
    return matches[0]


def verify(name: str) -> HashCheck:
    """The HashCheck of one cached asset (MISSING when it is not in the cache)."""
    asset = get_asset(name)
    path = asset.path
    if not path.is_file():
        return HashCheck(MISSING, f"{path} is not there")
    return check_hash(asset, sha256_of(path))
