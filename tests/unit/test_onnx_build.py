"""The torch-free ONNX builder (``onnx_build``) against today's torch exporter, key by key.

For each key a random checkpoint in the official layout (``isearchd.models.synthetic``) goes
through both: the torch exporter (``onnx_export.export_model``, the graphs ImgSearch has shipped
so far) and the builder (numpy arrays from ``checkpoint.read_state_dict``). Both graphs run in
ONNX Runtime through ``OnnxModel`` on the same images and texts (batches of 1 and 3, texts of
different lengths: the dynamic axes); the embeddings must agree to cosine >= 0.99999.
(``test_onnx.py`` holds the torch export to the torch towers, ``test_parity.py`` the towers to
the reference implementation.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto
from PIL import Image

from isearchd.errors import ModelError
from isearchd.models import MODELS, OnnxModel, load_model
from isearchd.models.checkpoint import normalise_keys, read_state_dict
from isearchd.models.exports import ExportPaths
from isearchd.models.onnx_build import BuiltGraphs, build_graphs, unsupported
from isearchd.models.onnx_export import export_model
from isearchd.models.registry import arch_config
from isearchd.models.resolve import resolve
from isearchd.models.synthetic import official_checkpoint, write_official_checkpoint

# Float results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

MIN_COSINE = 0.99999  # the builder's graph against the torch exporter's, both in ONNX Runtime
TEXTS = [
    "a photo of a cat",
    "Ein Hund läuft über die Wiese! 🐕",
    " ".join(["a very long caption about a small red circle on a blue background"] * 12),  # > 77 tokens
]
METADATA = {"isearch.key": "test"}
# The smallest manual and auto ViTs run always (and the tiny model, a ResNet, below); the others
# (10-15 s each on 2 cores, mostly the torch export) are marked slow.
FAST_KEYS = ("ViT-8Y", "ViT-22L")
KEYS = [pytest.param(key, marks=() if key in FAST_KEYS else pytest.mark.slow) for key in MODELS]
TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-clip.pt"


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    smooth = (np.linspace(0, 255, 240 * 200 * 3).reshape(200, 240, 3) % 256).astype(np.uint8)
    return [
        Image.fromarray(rng.integers(0, 256, (230, 310, 3), dtype=np.uint8)),
        Image.fromarray(smooth),
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).convert("L"),
    ]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ISEARCH_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"


def _save(built: BuiltGraphs, directory: Path) -> ExportPaths:
    directory.mkdir(parents=True, exist_ok=True)
    paths = ExportPaths(directory, directory / "image.onnx", directory / "text.onnx", directory / "table.npy")
    paths.image.write_bytes(built.image.SerializeToString())
    paths.text.write_bytes(built.text.SerializeToString())
    np.save(paths.token_table, built.token_table)
    return paths


def _parity(key: str, checkpoint: Path, tmp_path: Path) -> tuple[float, float]:
    """(min image cosine, min text cosine) of the builder's graphs against the torch exporter's."""
    torch.set_num_threads(2)
    exported = export_model(load_model(key, weights=checkpoint), "fp32")
    arrays, _ = read_state_dict(checkpoint)
    resolved = resolve(key, checkpoint)
    sizes = {"dim": resolved.dim, "image_size": resolved.image_size}
    sizes["context_length"] = resolved.context_length
    metadata = {f"isearch.{name}": str(value) for name, value in sizes.items()}
    built = build_graphs(arrays, resolved.config, metadata)
    ours = OnnxModel(key=key, paths=_save(built, tmp_path / "built"), weights_id="built", threads=2)
    theirs = OnnxModel(key=key, paths=exported, weights_id="torch", threads=2)
    np.testing.assert_array_equal(built.token_table, np.load(exported.token_table))
    images, cosines = _images(), []
    for batch in (images, images[:1]):
        cosines.append(_min_cosine(ours.embed_images(batch), theirs.embed_images(batch)))
    image = min(cosines)
    text = min(
        _min_cosine(ours.embed_texts(batch), theirs.embed_texts(batch)) for batch in (TEXTS, TEXTS[:1])
    )
    return image, text


@pytest.mark.parametrize("key", KEYS)
def test_towers_match_the_torch_export(key: str, tmp_path: Path) -> None:
    checkpoint = write_official_checkpoint(
        key, tmp_path / MODELS[key].file_name, seed=list(MODELS).index(key)
    )
    image, text = _parity(key, checkpoint, tmp_path)
    print(f"{key}: min cos images {image:.7f} texts {text:.7f}")
    assert image >= MIN_COSINE and text >= MIN_COSINE


def test_tiny_resnet_model_matches_the_torch_export(tmp_path: Path) -> None:
    """The test suite's tiny trained CLIP: a ModifiedResNet of width 16, text heads of width 16."""
    image, text = _parity(str(TINY), TINY, tmp_path)
    assert image >= MIN_COSINE and text >= MIN_COSINE


def test_quick_gelu_towers_match_the_torch_export(tmp_path: Path) -> None:
    """A custom checkpoint whose config asks for QuickGELU (open_clip's OpenAI models)."""
    checkpoint = write_official_checkpoint("ViT-8Y", tmp_path / "quick.pt", seed=9)
    config = {**arch_config(MODELS["ViT-8Y"].arch), "quick_gelu": True}
    checkpoint.with_suffix(".json").write_text(json.dumps(config), encoding="utf-8")
    image, text = _parity(str(checkpoint), checkpoint, tmp_path)
    assert image >= MIN_COSINE and text >= MIN_COSINE


def torch_free_arrays(key: str) -> dict[str, np.ndarray]:
    """A random checkpoint's arrays, as ``read_state_dict`` gives them, without a file."""
    tensors = official_checkpoint(key, seed=5)["state_dict"]
    arrays, _ = normalise_keys({name: t.numpy() for name, t in tensors.items()})
    return arrays


def test_graph_interface() -> None:
    arrays = torch_free_arrays("ViT-8Y")
    built = build_graphs(arrays, arch_config(MODELS["ViT-8Y"].arch), {"isearch.key": "ViT-8Y"})
    image, text = built.image, built.text
    assert image.opset_import[0].version == text.opset_import[0].version == 17
    (pixels,) = image.graph.input
    assert pixels.name == "pixels" and pixels.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim] == ["batch", 3, 224, 224]
    embedded, eot = text.graph.input
    assert [d.dim_param or d.dim_value for d in embedded.type.tensor_type.shape.dim] == [
        "batch",
        "length",
        256,
    ]
    assert eot.name == "eot" and eot.type.tensor_type.elem_type == TensorProto.INT64
    for graph in (image, text):
        (out,) = graph.graph.output
        assert out.name == "embedding"
        assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 512]
        assert {p.key: p.value for p in graph.metadata_props} == {"isearch.key": "ViT-8Y"}
    assert built.token_table.shape == (49408, 256) and built.token_table.dtype == np.float32


def test_wrong_tensors_are_refused() -> None:
    config = arch_config(MODELS["ViT-8Y"].arch)
    arrays = torch_free_arrays("ViT-8Y")
    with pytest.raises(ModelError, match=r"missing tensor 'visual\.ln_post\.bias'"):
        build_graphs({k: v for k, v in arrays.items() if k != "visual.ln_post.bias"}, config, METADATA)
    with pytest.raises(ModelError, match=r"unexpected visual\.extra"):
        build_graphs({**arrays, "visual.extra": np.zeros(3, np.float32)}, config, METADATA)
    bad = dict(arrays)
    bad["visual.transformer.resblocks.0.mlp.c_proj.weight"] = np.zeros((256, 7), np.float32)
    with pytest.raises(ModelError, match="do not fit the architecture"):
        build_graphs(bad, config, METADATA)
    with pytest.raises(ModelError, match=r"conv1\.weight has shape .* for patch size 32"):
        build_graphs(arrays, arch_config(MODELS["ViT-40L"].arch), METADATA)


def test_wrong_resnet_tensors_are_refused() -> None:
    config = arch_config(MODELS["RN-19L"].arch)
    arrays = torch_free_arrays("RN-19L")
    missing = "visual.layer4.0.downsample.1.running_var"
    with pytest.raises(ModelError, match=re.escape(f"missing tensor {missing!r}")):
        build_graphs({k: v for k, v in arrays.items() if k != missing}, config, METADATA)
    deeper = {**config, "vision_cfg": {**config["vision_cfg"], "layers": [3, 4, 5, 3]}}  # a block too many
    with pytest.raises(ModelError, match=r"unexpected visual\.layer3\.5\."):
        build_graphs(arrays, deeper, METADATA)


def test_configs_it_cannot_build_are_named() -> None:
    config = arch_config(MODELS["ViT-8Y"].arch)
    assert unsupported(config) is None
    assert unsupported({**config, "text_cfg": {**config["text_cfg"], "pool_type": "argmax"}}) is None
    assert "text.pool_type" in (
        unsupported({**config, "text_cfg": {**config["text_cfg"], "pool_type": "last"}}) or ""
    )
    timm = {**config, "vision_cfg": {**config["vision_cfg"], "timm_model_name": "vit_tiny"}}
    assert "vision.timm_model_name" in (unsupported(timm) or "")
    assert "Hugging Face" in (unsupported({**config, "custom_text": True}) or "")
    assert "unknown" in (unsupported({**config, "unknown": 1}) or "")
    with pytest.raises(ModelError, match=r"vision\.ls_init_value"):
        build_graphs({}, {**config, "vision_cfg": {**config["vision_cfg"], "ls_init_value": 0.1}}, METADATA)
