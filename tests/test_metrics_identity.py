"""Identity similarity: MoCo-v2 loading and features, ArcFace through insightface, failure counting."""

import onnxruntime
import pytest
import torch
import torch.nn.functional as F
import torchvision

from e4e_bench.errors import E4EBenchError
from e4e_bench.metrics import MetricSpec, get_metric
from e4e_bench.metrics.evaluate import Evaluation
from e4e_bench.metrics.identity import IdentitySimilarity, write_random_recognition_onnx
from e4e_bench.networks.moco import load_moco
from tests.metrics_helpers import distort, random_context, smooth_images


@pytest.fixture(scope="module")
def official_moco_checkpoint(tmp_path_factory):
    """The layout of moco_v2_800ep_pretrain.pth.tar: query + key encoders, MLP head, queue."""
    torch.manual_seed(3)
    backbone = torchvision.models.resnet50(weights=None).state_dict()
    state = {f"module.encoder_q.{key}": value for key, value in backbone.items() if not key.startswith("fc.")}
    state |= {
        "module.encoder_q.fc.0.weight": torch.randn(2048, 2048),
        "module.encoder_q.fc.2.weight": torch.randn(128, 2048),
        "module.encoder_k.conv1.weight": torch.randn(64, 3, 7, 7),
        "module.queue": torch.randn(128, 16),
    }
    path = tmp_path_factory.mktemp("moco") / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state}, path)
    return path, backbone


def test_moco_loads_the_query_encoder_without_its_head(official_moco_checkpoint):
    path, backbone = official_moco_checkpoint
    net = load_moco(path)
    loaded = net.backbone.state_dict()
    assert set(loaded) == {key for key in backbone if not key.startswith("fc.")}
    for key, value in loaded.items():
        torch.testing.assert_close(value, backbone[key])
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_moco_rejects_a_checkpoint_without_query_encoder(tmp_path):
    path = tmp_path / "not_moco.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(E4EBenchError, match="assets fetch moco-v2"):
        load_moco(path)


def test_missing_moco_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    with pytest.raises(E4EBenchError, match="assets fetch moco-v2"):
        get_metric("id_moco").build(random_context(pretrained=True))


def test_moco_similarity_equals_a_direct_resnet50_computation():
    torch.manual_seed(0)
    real, fake = smooth_images(2, 48, 64), distort(smooth_images(2, 48, 64), 0.3)
    metric = get_metric("id_moco").build(random_context())
    reference = torchvision.models.resnet50(weights=None).eval()
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(metric.embed.backbone.state_dict())
    with torch.inference_mode():
        scores = metric(real, fake)
        a, b = reference(F.interpolate(torch.cat([real, fake]), size=224, mode="nearest")).chunk(2)
    torch.testing.assert_close(scores, F.cosine_similarity(a, b), rtol=1e-4, atol=1e-5)


def test_arcface_runs_insightface_on_the_fixed_face_crop(tmp_path):
    model = write_random_recognition_onnx(tmp_path / "w600k_r50.onnx", seed=0, dims=16)
    context = random_context(weights={"arcface-w600k-r50": model})
    real, fake = smooth_images(3, 256, 256), distort(smooth_images(3, 256, 256), 0.3)
    scores = get_metric("id_arcface").build(context)(real, fake)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def embed(images):  # insightface: RGB 0..255 -> (x - 127.5) / 127.5, i.e. the [-1,1] crop itself
        crop = F.adaptive_avg_pool2d(images[:, :, 35:223, 32:220], 112)
        return torch.from_numpy(session.run(None, {"input.1": crop.numpy()})[0])

    torch.testing.assert_close(scores, F.cosine_similarity(embed(real), embed(fake)), rtol=1e-4, atol=1e-5)


def test_id_follows_the_domain_and_needs_one(tmp_path, monkeypatch):
    from e4e_bench.domains import get_domain

    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))
    with pytest.raises(E4EBenchError, match="assets fetch arcface-w600k-r50"):
        get_metric("id").build(random_context(domain=get_domain("faces"), pretrained=True))
    with pytest.raises(E4EBenchError, match="id_arcface or id_moco"):
        get_metric("id").build(random_context())


def test_undefined_embeddings_are_counted_as_failures_not_dropped():
    def embed(images):  # the second pair's fake embeds to zero: its cosine is undefined
        features = images.flatten(1)[:, :8].clone()
        features[3] = 0
        return features

    spec = MetricSpec("id_test", "paired", "test", lambda context: IdentitySimilarity(embed), True)
    evaluation = Evaluation([spec], random_context())
    real = smooth_images(2, 16, 16)
    evaluation.add_pairs(["a.png", "b.png"], real, real)
    summary = evaluation.summary().metrics["id_test"]
    assert summary.details["n"] == 1 and summary.details["n_failed"] == 1
    assert summary.value == pytest.approx(1.0)
    assert torch.isnan(evaluation.per_image()["id_test"][1])


def test_random_weights_arcface_needs_no_file(tmp_path, monkeypatch):
    """--random-weights: a random stand-in with ArcFace's input and output runs the insightface pipeline."""
    monkeypatch.setenv("E4E_BENCH_HOME", str(tmp_path))  # an empty cache: no w600k_r50.onnx anywhere
    real = smooth_images(2, 256, 256)
    metric = get_metric("id_arcface").build(random_context())
    torch.testing.assert_close(metric(real, real), torch.ones(2), rtol=0, atol=1e-5)
    assert metric.embed(real).shape == (2, 512)
    assert not any(tmp_path.iterdir())
