"""Semantics end to end with the tiny CLIP trained on synthetic shapes (tests/fixtures/).

The checkpoint is loaded through the public ``load_model`` path for custom open_clip-format
checkpoints, and every image is a held-out render (seeds the training script never used), so
these tests prove that preprocessing, both towers and the checkpoint layout fit together.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from isearchd.models import Model, load_model

# Float and integer results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHECKPOINT = FIXTURES / "tiny-clip.pt"
PER_CLASS = 5  # gallery images per class: 150 in all, so top-5 precision can reach 1.0

Gallery = tuple[list[tuple[str, str]], np.ndarray]


def _load_shapes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiny_clip_shapes", FIXTURES / "shapes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


shapes = _load_shapes()


@pytest.fixture(scope="module")
def model() -> Model:
    torch.set_num_threads(2)
    return load_model(str(CHECKPOINT))


@pytest.fixture(scope="module")
def gallery(model: Model) -> Gallery:
    """Held-out images, PER_CLASS per class; some at 64 px, some at 160 px (resized by the model)."""
    labels, images = [], []
    for colour, shape in shapes.CLASSES:
        for i in range(PER_CLASS):
            size = 64 if i % 2 == 0 else 160
            images.append(shapes.render(colour, shape, shapes.HELD_OUT_SEED + i, size=size))
            labels.append((colour, shape))
    vectors = model.embed_images(images)
    return labels, vectors


def test_loads_as_custom_checkpoint(model: Model) -> None:
    cfg = json.loads((FIXTURES / "tiny-clip.json").read_text())
    assert model.key == "custom:tiny-clip.pt"
    assert model.dim == cfg["embed_dim"] == 64
    assert model.image_size == cfg["vision_cfg"]["image_size"] == 64


def test_checkpoint_is_small_and_in_official_manual_layout() -> None:
    assert CHECKPOINT.stat().st_size < 8_000_000
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    prefixes = {key.split(".", 2)[0] + "." + key.split(".", 2)[1] for key in state}
    assert prefixes == {"_image_encoder.module", "_text_encoder.module", "_logit_scale.module"}
    assert "_logit_scale.module.logit_scale" in state
    assert "_text_encoder.module.token_embedding.weight" in state
    assert any(key.startswith("_image_encoder.module.visual.attnpool.") for key in state)


def test_embeddings_are_unit_rows(model: Model, gallery: Gallery) -> None:
    _, vectors = gallery
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(shapes.CLASSES) * PER_CLASS, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_red_circle_top5_precision(model: Model, gallery: Gallery) -> None:
    labels, vectors = gallery
    query = model.embed_texts(["a red circle"])[0]
    top5 = np.argsort(-(vectors @ query), kind="stable")[:5]
    precision = np.mean([labels[i] == ("red", "circle") for i in top5])
    assert precision >= 0.9, [labels[i] for i in top5]


def test_every_class_caption_top5_precision(model: Model, gallery: Gallery) -> None:
    labels, vectors = gallery
    texts = model.embed_texts([shapes.caption(c, s) for c, s in shapes.CLASSES])
    hits: list[bool] = []
    for cls, text in zip(shapes.CLASSES, texts, strict=True):
        top5 = np.argsort(-(vectors @ text), kind="stable")[:5]
        hits.extend(labels[i] == cls for i in top5)
    assert np.mean(hits) >= 0.9


def test_image_query_blue_square_returns_blue_squares_first(model: Model, gallery: Gallery) -> None:
    labels, vectors = gallery
    query_image = shapes.render("blue", "square", shapes.HELD_OUT_SEED + 500, size=128)
    query = model.embed_images([query_image])[0]
    order = np.argsort(-(vectors @ query), kind="stable")
    first = [labels[i] for i in order[:PER_CLASS]]
    assert first == [("blue", "square")] * PER_CLASS


def test_image_compared_with_itself_is_100(model: Model) -> None:
    image = shapes.render("green", "star", shapes.HELD_OUT_SEED + 7, size=96)
    other = shapes.render("orange", "triangle", shapes.HELD_OUT_SEED + 7, size=96)
    a, b, c = model.embed_images([image, image.copy(), other])
    assert round(float(a @ b) * 100, 1) == 100.0
    assert round(float(a @ c) * 100, 1) < 100.0


def test_matches_reference_implementation(model: Model, reference_src: Path) -> None:
    """The reference TinyCLIP code loads the same file (strictly) and embeds the same way."""
    import tinyclip

    cfg = json.loads((FIXTURES / "tiny-clip.json").read_text())
    ref = tinyclip.model.CLIP(cfg["embed_dim"], dict(cfg["vision_cfg"]), dict(cfg["text_cfg"]))
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    ref.load_state_dict({key: value.float() for key, value in state.items()}, strict=True)
    ref.eval()
    images = [
        shapes.render(colour, shape, shapes.HELD_OUT_SEED + 3, size=64 if k % 2 else 128)
        for k, (colour, shape) in enumerate(shapes.CLASSES)
    ]
    texts = ["a red circle", "blue square", "a photo of a purple star", "an orange cross"]
    preprocess = tinyclip.image_transform(64, is_train=False)
    with torch.inference_mode():
        ref_images = ref.encode_image(torch.stack([preprocess(im) for im in images]), normalized=True).numpy()
        ref_texts = ref.encode_text(tinyclip.tokenize(texts), normalized=True).numpy()
    ours_images = model.embed_images(images)
    ours_texts = model.embed_texts(texts)
    assert np.min(np.sum(ref_images * ours_images, axis=1)) >= 0.9999
    assert np.min(np.sum(ref_texts * ours_texts, axis=1)) >= 0.9999
