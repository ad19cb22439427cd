"""Identity similarity between an image and its reconstruction: ArcFace for faces, MoCo-v2 elsewhere.

ArcFace is insightface's recognition model (``w600k_r50.onnx`` from the buffalo_l pack) run through
insightface's own ``ArcFaceONNX`` on 112x112 crops. The faces are FFHQ-aligned, so no detector
runs: the crop is pSp's fixed face box (rows 35:223, columns 32:220 of a 256x256 image, scaled to
the image size), area-averaged to 112x112. MoCo is e4e's MocoLoss network (``e4e_bench.networks.moco``).
The score is the cosine of the two embeddings; an image whose embedding is not finite or is zero
gets NaN and is counted as failed, never dropped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from e4e_bench.errors import E4EBenchError
from e4e_bench.faces.crop import arcface_input
from e4e_bench.networks.moco import MOCO_ASSET, load_moco
from e4e_bench.domains import IDENTITY_METRICS
from e4e_bench.metrics.registry import MetricContext, get_metric, register_metric

INSIGHTFACE_ARCFACE_ASSET = "arcface-w600k-r50"

ARCFACE_PROTOCOL = (
    "cosine of insightface ArcFace (buffalo_l w600k_r50.onnx, ArcFaceONNX, RGB (x-127.5)/127.5) embeddings of "
    "detector-free crops: rows 35:223, cols 32:220 per 256 px, area-averaged to 112x112; failures counted"
)
MOCO_PROTOCOL = (
    "cosine of MoCo-v2 ResNet-50 (800 ep, encoder_q without head) 2048-d features, e4e MocoLoss input: "
    "[-1,1] images, nearest resize to 224x224, no ImageNet normalisation"
)


class ArcFaceEmbedder:
    """insightface ArcFaceONNX on [-1,1] RGB images -> raw 512-d embeddings (on the images' device)."""

    def __init__(self, context: MetricContext):
        import onnxruntime
        from insightface.model_zoo import get_model

        providers = ["CPUExecutionProvider"]
        if context.device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        if context.pretrained or INSIGHTFACE_ARCFACE_ASSET in context.weights:
            model_file = context.weights_file(INSIGHTFACE_ARCFACE_ASSET)
            self.model = get_model(str(model_file), providers=providers)
        else:
            with tempfile.TemporaryDirectory() as folder:  # the session keeps the graph; the file can go
                model_file = write_random_recognition_onnx(Path(folder) / "random_arcface.onnx", context.seed)
                self.model = get_model(str(model_file), providers=providers)
        if self.model is None or getattr(self.model, "taskname", None) != "recognition":
            raise E4EBenchError(
                f"{model_file} is not an insightface recognition model; "
                f"run `python -m e4e_bench assets fetch {INSIGHTFACE_ARCFACE_ASSET}`"
            )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # ArcFaceONNX.forward takes RGB 0..255 and applies (x - 127.5) / 127.5 itself.
        pixels = (arcface_input(images).clamp(-1, 1) * 127.5 + 127.5).float().cpu().numpy()
        return torch.from_numpy(self.model.forward(pixels)).to(images.device)


def write_random_recognition_onnx(path: Path, seed: int, dims: int = 512) -> Path:
    """--random-weights stand-in for the ArcFace file: a small random ONNX graph with its input and
    output ([N,3,112,112] -> [N,dims]: strided conv, ReLU, global pooling, linear), which insightface
    loads as a recognition model, so the whole pipeline runs without the real weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "conv_w": rng.normal(0, 0.2, (8, 3, 8, 8)).astype(np.float32),
        "fc_w": rng.normal(0, 0.5, (8, dims)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["c"], name="conv0", strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool0"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten0"),
        helper.make_node("MatMul", ["f", "fc_w"], ["embedding"], name="fc0"),
    ]
    graph = helper.make_graph(
        nodes,
        "random_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["None", dims])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


class IdentitySimilarity:
    """Paired metric: cosine between the embeddings of real and fake; NaN where undefined."""

    def __init__(self, embed):
        self.embed = embed

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        embedded_real, embedded_fake = self.embed(torch.cat([real, fake])).float().chunk(2)
        defined = (
            embedded_real.isfinite().all(dim=1)
            & embedded_fake.isfinite().all(dim=1)
            & (embedded_real.norm(dim=1) > 0)
            & (embedded_fake.norm(dim=1) > 0)
        )
        cosine = F.cosine_similarity(embedded_real, embedded_fake, dim=1)
        return torch.where(defined, cosine, torch.full_like(cosine, float("nan")))


def moco_similarity(context: MetricContext) -> IdentitySimilarity:
    path = context.weights_file(MOCO_ASSET) if context.pretrained else None
    return IdentitySimilarity(load_moco(path, pretrained=context.pretrained, device=context.device))


def arcface_similarity(context: MetricContext) -> IdentitySimilarity:
    return IdentitySimilarity(ArcFaceEmbedder(context))


@register_metric(IDENTITY_METRICS["arcface"], kind="paired", title="ID (ArcFace)", higher_is_better=True, protocol=ARCFACE_PROTOCOL,
                 assets=(INSIGHTFACE_ARCFACE_ASSET,))
def build_id_arcface(context: MetricContext) -> IdentitySimilarity:
    return arcface_similarity(context)


@register_metric(IDENTITY_METRICS["moco"], kind="paired", title="ID (MoCo)", higher_is_better=True, protocol=MOCO_PROTOCOL,
                 assets=(MOCO_ASSET,))
def build_id_moco(context: MetricContext) -> IdentitySimilarity:
    return moco_similarity(context)


@register_metric(
    "id",
    kind="paired",
    title="ID",
    unit="cosine similarity",
    in_run=True,
    stands_for=lambda domain: domain.identity_metric,
    higher_is_better=True,
    protocol=f"the domain's identity metric: faces -> id_arcface ({ARCFACE_PROTOCOL}); others -> id_moco ({MOCO_PROTOCOL})",
)
def build_id(context: MetricContext) -> IdentitySimilarity:
    if context.domain is None or context.domain.identity is None:
        which = "no --domain given" if context.domain is None else f"domain {context.domain.name} has no identity network"
        raise E4EBenchError(f"metric 'id' follows the domain ({which}); name id_arcface or id_moco instead")
    return get_metric(context.domain.identity_metric).build(context)
