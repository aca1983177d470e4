"""Parity with the reference TinyCLIP implementation for every model key, for the torch towers and
for the ONNX graphs the torch-free builder makes (what the daemon runs).

For each of the 11 keys a random checkpoint in the official file layout is written (manual
layout for the standard architectures; compact layout for the auto ones, with a pruned residual
width, per-layer head counts and MLP widths, a layer without attention and one without MLP, see
``isearchd.models.synthetic``). Our loader and the reference (``tinyclip`` from the
imgsearch==0.3.3 wheel, fp32, no autocast, its own preprocessing and tokenizer) load the same
file; every image and text embedding must agree to cosine >= 0.9999.

The reference handles an auto checkpoint the way its ``create_model`` handles the published
auto weights: it builds the full ViT-B/32 with L0 masks, copies the compact tensors in, and
prunes (``load_pruned_checkpoint`` + ``prune_model``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from isearchd.models import MODELS, load_model
from isearchd.models.synthetic import write_official_checkpoint

# Float and integer results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

MIN_COSINE = 0.9999
VIT_B32_VISION_PARAMS = 87_849_216  # the unpruned base of the auto models

TEXTS = [
    "a photo of a cat",
    "Ein Hund läuft über die Wiese! 🐕",
    " ".join(["a very long caption about a small red circle on a blue background"] * 12),  # > 77 tokens
]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(42)
    smooth = np.linspace(0, 255, 300 * 260 * 3).reshape(260, 300, 3) % 256
    return [
        Image.fromarray(rng.integers(0, 256, (250, 320, 3), dtype=np.uint8)),
        Image.fromarray(smooth.astype(np.uint8)),
    ]


@pytest.fixture(scope="module")
def tinyclip(reference_src: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tinyclip

    return tinyclip


def _reference_embeddings(tinyclip: Any, arch: str, checkpoint: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with warnings.catch_warnings():  # the reference warns about its own indexing and empty layers
        warnings.simplefilter("ignore")
        model, _, transform = tinyclip.create_model_and_transforms(arch, pretrained=str(checkpoint))
        model.eval()
        with torch.no_grad():
            pixels = torch.stack([transform(img) for img in _images()])
            images = model.encode_image(pixels, normalized=True).float().numpy()
            texts = model.encode_text(tinyclip.tokenize(TEXTS), normalized=True).float().numpy()
    return images, texts, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key", list(MODELS))
def test_embeddings_match_the_reference(key: str, tinyclip: Any, tmp_path: Path) -> None:
    spec = MODELS[key]
    checkpoint = write_official_checkpoint(key, tmp_path / spec.file_name, seed=list(MODELS).index(key))
    try:
        model = load_model(key, weights=checkpoint)
        ours_img, ours_txt = model.embed_images(_images()), model.embed_texts(TEXTS)
        # the daemon's path: ONNX Runtime on the graphs the torch-free builder made (issue 26)
        built = load_model(key, weights=checkpoint, backend="onnx", threads=2)
        built_img, built_txt = built.embed_images(_images()), built.embed_texts(TEXTS)
        ref_img, ref_txt, ref_params = _reference_embeddings(tinyclip, spec.arch, checkpoint)
        stored = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    finally:
        checkpoint.unlink()  # a few hundred MB each; pytest keeps old tmp dirs around

    assert ours_img.shape == ref_img.shape == (2, spec.dim)
    assert ours_txt.shape == ref_txt.shape == (3, spec.dim)
    img_cos = (ours_img * ref_img).sum(axis=1)
    txt_cos = (ours_txt * ref_txt).sum(axis=1)
    assert img_cos.min() >= MIN_COSINE, img_cos
    assert txt_cos.min() >= MIN_COSINE, txt_cos
    assert (built_img * ref_img).sum(axis=1).min() >= MIN_COSINE
    assert (built_txt * ref_txt).sum(axis=1).min() >= MIN_COSINE
    # the two images and the three texts are told apart (the embeddings are not degenerate)
    assert (ours_img @ ours_img.T)[0, 1] < 0.999 and (ours_txt @ ours_txt.T)[0, 1] < 0.999

    # The loaded model holds exactly the checkpoint's parameters: for auto models the compact
    # ones (the reference may keep a few extra all-zero neurons), nothing of the full ViT-B/32.
    buffers = ("running_mean", "running_var", "num_batches_tracked")  # ResNet batch-norm statistics
    assert model.num_parameters == sum(t.numel() for k, t in stored.items() if not k.endswith(buffers))
    if spec.auto:
        assert model.num_parameters <= ref_params
        towers = model.towers
        assert isinstance(towers, torch.nn.Module)
        vision = sum(p.numel() for name, p in towers.named_parameters() if name.startswith("visual."))
        assert vision < 0.75 * VIT_B32_VISION_PARAMS
    else:
        assert model.num_parameters == ref_params
