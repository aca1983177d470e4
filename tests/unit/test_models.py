"""The model layer: registry, loading (custom, standard, compact), preprocessing, text handling, errors.

Parity with the reference implementation for all 11 keys is in test_parity.py; here everything
runs on small or synthetic models so the file stays fast.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, cast

import numpy as np
import open_clip
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from open_clip.transform import image_transform
from PIL import Image

from isearchd.errors import InvalidRequest, ModelError, WeightsMissing
from isearchd.models import DEFAULT_MODEL, MODELS, Model, ModelSpec, load_model
from isearchd.models.compact import CompactBlock, CompactCLIP
from isearchd.models.loader import build_towers
from isearchd.models.preprocess import preprocess
from isearchd.models.registry import arch_config, get_spec
from isearchd.models.synthetic import AutoPlan, compact_shapes, random_tensors, write_official_checkpoint

# Float and integer results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

# A small open_clip CLIP like the project's test model: ResNet image tower at 64 px.
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 32, "patch_size": None},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}

# A small "auto" base: ViT (2 heads of 64) and text (2 heads of 64), pruned by TINY_PLAN.
TINY_AUTO_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 4},
}
TINY_PLAN = AutoPlan(
    vision_width=96,
    vision_layers=((2, 301), (0, 77), (1, 0), (2, 512)),
    text_width=112,
    text_layers=((1, 65), (2, 0), (0, 33), (2, 300)),
)

LONG_TEXT = " ".join(["a very long caption about a red circle on a blue background"] * 20)


def _images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (130, 70, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)),  # grayscale
    ]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A random open_clip CLIP saved as ``tiny.pt`` (plain open_clip keys) with ``tiny.json``."""
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(**TINY_CONFIG).eval()
    # BatchNorm running stats away from their defaults, so eval-mode use is actually tested
    with torch.no_grad():
        for module in clip.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("tiny")
    torch.save(clip.state_dict(), folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    return folder / "tiny.pt", clip


@pytest.fixture(scope="module")
def vit8y_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ViT-8Y checkpoint in the official (manual) layout."""
    path = tmp_path_factory.mktemp("ckpt") / MODELS["ViT-8Y"].file_name
    return write_official_checkpoint("ViT-8Y", path, seed=3)


def _reference_embeddings(
    clip: Any, images: list[Image.Image], texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    transform = image_transform(TINY_CONFIG["vision_cfg"]["image_size"], is_train=False)
    with torch.no_grad():
        pixels = torch.stack([transform(img.convert("RGB")) for img in images])
        img = torch.nn.functional.normalize(clip.encode_image(pixels), dim=-1).numpy()
        txt = torch.nn.functional.normalize(clip.encode_text(open_clip.tokenize(texts)), dim=-1).numpy()
    return img, txt


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


# --- registry -------------------------------------------------------------------------------


def test_registry_has_the_eleven_keys_in_readme_order() -> None:
    assert list(MODELS) == [
        "ViT-8Y", "RN-19L", "ViT-22L", "RN-30L", "ViT-39Y", "ViT-40L",
        "ViT-45L", "ViT-45LY", "ViT-61L", "ViT-63L", "ViT-63LY",
    ]  # fmt: skip
    assert DEFAULT_MODEL == "ViT-45LY"
    assert [k for k, s in MODELS.items() if s.is_default] == ["ViT-45LY"]
    auto = {k for k, s in MODELS.items() if s.auto}
    assert auto == {"ViT-22L", "ViT-45L", "ViT-45LY", "ViT-63L", "ViT-63LY"}


def test_registry_entries_are_consistent_data() -> None:
    for key, spec in MODELS.items():
        assert isinstance(spec, ModelSpec) and spec.key == key
        assert spec.dim == (1024 if key.startswith("RN-") else 512)
        assert spec.file_name == f"{spec.arch}-{spec.data}.pt"
        assert spec.url == (
            f"https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/{spec.file_name}"
        )
        config = arch_config(spec.arch)
        assert config["embed_dim"] == spec.dim
        assert config["vision_cfg"]["image_size"] == 224
        assert 0 < spec.acc1 < 100 and spec.macs > 0 and spec.throughput > 0
    spec = MODELS["ViT-45LY"]
    assert (spec.arch, spec.data, spec.acc1, spec.macs, spec.throughput) == (
        "TinyCLIP-auto-ViT-45M-32-Text-18M", "LAIONYFCC400M", 62.7, 1.9, 3685,
    )  # fmt: skip
    assert MODELS["RN-19L"].url.endswith("/TinyCLIP-ResNet-19M-Text-19M-LAION400M.pt")
    with pytest.raises(AttributeError):
        spec.dim = 3  # type: ignore[misc]


def test_unknown_key_names_the_choices() -> None:
    assert get_spec("vit-45ly").key == "ViT-45LY"
    with pytest.raises(ModelError, match="ViT-45LY") as err:
        load_model("ViT-99Q")
    assert "unknown model" in err.value.message


# --- preprocessing --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize(
    "shape", [(300, 400), (401, 299), (224, 224), (1, 1), (7, 1500), (1000, 33), (64, 64)]
)
def test_preprocessing_equals_open_clip(size: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    img = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    expected = image_transform(size, is_train=False)(img)
    got = preprocess(img, size)
    assert got.shape == (3, size, size) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_model_preprocess_accepts_any_mode_and_follows_config(tiny_clip: tuple[Path, Any]) -> None:
    model = load_model(str(tiny_clip[0]))
    assert model.image_size == 64
    for mode in ("L", "RGBA", "P", "1", "CMYK", "I;16"):
        img = Image.new(mode, (80, 50))
        assert model.preprocess(img).shape == (3, 64, 64)


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "I;16"]),
    seed=st.integers(0, 2**16),
)
def test_fitting_first_changes_no_pixel_and_no_embedding(
    tiny_clip: tuple[Path, Any], width: int, height: int, mode: str, seed: int
) -> None:
    """The indexer fits pictures in its decode threads: the model must see the same pixels."""
    model = load_model(str(tiny_clip[0]))
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    fitted = model.fit_image(img)
    assert fitted.mode == "RGB" and fitted.size == (model.image_size, model.image_size)
    assert torch.equal(model.preprocess(fitted), model.preprocess(img))
    assert np.array_equal(model.embed_images([fitted]), model.embed_images([img]))


# --- custom checkpoints -----------------------------------------------------------------------


def test_custom_checkpoint_with_config_matches_open_clip(tiny_clip: tuple[Path, Any]) -> None:
    path, clip = tiny_clip
    model = load_model(str(path))
    assert isinstance(model, Model)
    assert (model.key, model.dim, model.image_size) == ("custom:tiny.pt", 64, 64)
    assert model.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert model.num_parameters == sum(p.numel() for p in clip.parameters())

    images, texts = _images(), ["a red circle", "x", LONG_TEXT]
    ref_img, ref_txt = _reference_embeddings(clip, images, texts)
    got_img, got_txt = model.embed_images(images), model.embed_texts(texts)
    for got in (got_img, got_txt):
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert got_img.shape == (3, 64) and got_txt.shape == (3, 64)
    assert _min_cos(got_img, ref_img) > 0.99999
    assert _min_cos(got_txt, ref_txt) > 0.99999


@pytest.mark.parametrize("layout", ["manual", "ddp"])
def test_custom_checkpoint_in_other_layouts(tiny_clip: tuple[Path, Any], tmp_path: Path, layout: str) -> None:
    clip = tiny_clip[1]
    sd = clip.state_dict()
    if layout == "manual":  # TinyCLIP's own layout
        saved: dict[str, Any] = {
            "state_dict": {
                ("_image_encoder.module." if k.startswith("visual.") else "_logit_scale.module."
                 if k == "logit_scale" else "_text_encoder.module.") + k: v
                for k, v in sd.items()
            }
        }  # fmt: skip
    else:
        saved = {"module." + k: v for k, v in sd.items()}
    target = tmp_path / "mine.pt"
    torch.save(saved, target)
    (tmp_path / "mine.json").write_text(json.dumps(TINY_CONFIG))
    model = load_model(str(target))
    assert model.key == "custom:mine.pt"
    ref_img, ref_txt = _reference_embeddings(clip, _images(), ["a blue square"])
    assert _min_cos(model.embed_images(_images()), ref_img) > 0.99999
    assert _min_cos(model.embed_texts(["a blue square"]), ref_txt) > 0.99999


def test_custom_checkpoint_needs_its_config(tmp_path: Path, tiny_clip: tuple[Path, Any]) -> None:
    lonely = tmp_path / "lonely.pt"
    lonely.write_bytes(tiny_clip[0].read_bytes())
    with pytest.raises(ModelError, match=r"lonely\.json"):
        load_model(str(lonely))
    (tmp_path / "lonely.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"lonely\.json"):
        load_model(str(lonely))


def test_custom_config_of_another_shape_is_refused(tmp_path: Path, tiny_clip: tuple[Path, Any]) -> None:
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_clip[0].read_bytes())
    config = json.loads(json.dumps(TINY_CONFIG))
    config["text_cfg"]["width"] = 256
    (tmp_path / "other.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"other\.pt.*size mismatch"):
        load_model(str(other))


# --- standard keys and bad files ----------------------------------------------------------------


def test_standard_key_loads_official_layout(vit8y_checkpoint: Path) -> None:
    model = load_model("ViT-8Y", weights=vit8y_checkpoint)
    assert (model.key, model.dim, model.image_size) == ("ViT-8Y", 512, 224)
    emb = model.embed_images(_images())
    assert emb.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    # the same picture twice gives the same row, up to float32 rounding: the two rows of a batch
    # may go through different GEMM tails (oneDNN's AVX2 kernels did here; bitwise-equal rows are
    # not what float32 matrix products promise), a few ulps of a unit vector's coordinates
    twice = model.embed_images([_images()[0], _images()[0]])
    np.testing.assert_allclose(twice[0], twice[1], rtol=0, atol=1e-6)
    assert float(twice[0] @ twice[1]) >= 1 - 1e-6
    assert model.embed_images([]).shape == (0, 512)
    assert model.embed_texts([]).shape == (0, 512)


def test_weights_none_uses_the_cache(vit8y_checkpoint: Path) -> None:
    from isearchd.models.weights import cache_file

    with pytest.raises(WeightsMissing):
        load_model("ViT-8Y")
    target = cache_file("ViT-8Y")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(vit8y_checkpoint.read_bytes())
    assert load_model("ViT-8Y").key == "ViT-8Y"


def test_wrong_architecture_is_refused(vit8y_checkpoint: Path, tmp_path: Path) -> None:
    for key in ("ViT-40L", "RN-19L", "ViT-45LY"):
        with pytest.raises(ModelError) as err:
            load_model(key, weights=vit8y_checkpoint)
        assert str(vit8y_checkpoint) in err.value.message
        assert f"not a checkpoint of {key}" in err.value.message
    # a pruned (auto layout) file never passes for a standard architecture
    pruned = write_official_checkpoint("ViT-22L", tmp_path / "pruned.pt")
    for key in ("ViT-40L", "ViT-61L"):
        with pytest.raises(ModelError, match=r"pruned.pt: not a checkpoint of .*pruned \(auto\)"):
            load_model(key, weights=pruned)


def test_broken_files_are_refused_with_file_and_reason(vit8y_checkpoint: Path, tmp_path: Path) -> None:
    data = vit8y_checkpoint.read_bytes()
    cases = {
        "truncated.pt": data[: len(data) // 2],
        "random.pt": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.pt": b"",
        "text.pt": b"this is not a checkpoint\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelError) as err:
            load_model("ViT-8Y", weights=path)
        assert str(path) in err.value.message, name
    with pytest.raises(ModelError, match="does not exist"):
        load_model("ViT-8Y", weights=tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="directory"):
        load_model("ViT-8Y", weights=tmp_path)
    # pickles of arbitrary objects are never unpickled
    torch.save({"state_dict": {"x": threading.Lock}}, tmp_path / "object.pt")
    with pytest.raises(ModelError, match=r"object\.pt"):
        load_model("ViT-8Y", weights=tmp_path / "object.pt")
    torch.save({"epoch": 3}, tmp_path / "notensors.pt")
    with pytest.raises(ModelError, match="no tensors"):
        load_model("ViT-8Y", weights=tmp_path / "notensors.pt")


# --- text -------------------------------------------------------------------------------------


def test_empty_text_is_an_error_and_long_text_is_truncated(tiny_clip: tuple[Path, Any]) -> None:
    model = load_model(str(tiny_clip[0]))
    for bad in (["", "a cat"], ["   \n\t"]):
        with pytest.raises(InvalidRequest, match="empty"):
            model.embed_texts(bad)
    long = model.embed_texts([LONG_TEXT])
    assert long.shape == (1, 64)
    # truncation keeps the first 75 tokens: a text that only differs later embeds the same
    np.testing.assert_allclose(model.embed_texts([LONG_TEXT + " and a green triangle"]), long, atol=1e-6)


def test_text_runs_on_the_longest_sequence_with_identical_output(tiny_clip: tuple[Path, Any]) -> None:
    """Trimming the batch to its longest sequence gives what the full 77-token pass gives.

    Identical in arithmetic, not bit for bit in float32: another sequence length changes the shapes
    of the matrix products, so the CPU's kernels (AVX2, AVX-512, AMX...) sum in another order and
    float32 results differ by rounding (1.3e-6 seen on AVX2). Both paths therefore run in float64
    here, where rounding is ~1e-15 on every CPU: the tolerances below leave room for rounding only,
    while a trimming mistake (a position or the causal mask off by one) moves outputs by ~0.1.
    """
    path, clip = tiny_clip
    model = load_model(str(path))
    model.towers.double()
    texts = ["a red circle", "two blue squares on a green background", "x"]
    tokens = open_clip.tokenize(texts)
    with torch.no_grad():
        full = copy.deepcopy(clip).double().encode_text(tokens)  # open_clip: always 77 positions
        trimmed = model.towers.encode_text(tokens)
    assert trimmed.dtype == full.dtype == torch.float64
    torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-9)
    # alone, or batched with a 77-token text (which disables trimming), the rows are the same: the
    # float64 rows agree to ~1e-15, so after rounding to float32 they differ by at most one unit in
    # the last place of a normalised value (2**-23 below 1)
    alone = model.embed_texts(texts)
    mixed = model.embed_texts([*texts, LONG_TEXT])[:3]
    np.testing.assert_allclose(alone, mixed, rtol=0, atol=2**-23)


# --- compact ("auto") towers ---------------------------------------------------------------------


def _tiny_compact(seed: int = 0) -> dict[str, torch.Tensor]:
    return random_tensors(compact_shapes(TINY_AUTO_CONFIG, TINY_PLAN), seed)


def test_compact_towers_follow_the_checkpoint_shapes() -> None:
    sd = _tiny_compact()
    towers = build_towers(sd, TINY_AUTO_CONFIG, auto=True)
    assert isinstance(towers, CompactCLIP)
    assert sum(p.numel() for p in towers.parameters()) == sum(t.numel() for t in sd.values())
    plan = [
        (block.heads, block.mlp_width)
        for block in cast("list[CompactBlock]", list(towers.visual.transformer.resblocks))
    ]
    assert plan == list(TINY_PLAN.vision_layers)
    text_blocks = cast("list[CompactBlock]", list(towers.transformer.resblocks))
    assert text_blocks[2].attn is None and text_blocks[1].mlp is None
    with torch.no_grad():
        out = towers.encode_image(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_compact_text_trimming_is_exact() -> None:
    towers = build_towers(_tiny_compact(1), TINY_AUTO_CONFIG, auto=True)
    texts = ["a red circle", "two blue squares", "x"]
    with torch.no_grad():
        alone = towers.encode_text(open_clip.tokenize(texts))
        mixed = towers.encode_text(open_clip.tokenize([*texts, LONG_TEXT]))[:3]
    torch.testing.assert_close(alone, mixed, rtol=1e-5, atol=1e-6)


def test_compact_checkpoint_mismatches_are_model_errors() -> None:
    sd = _tiny_compact()
    bad = dict(sd)
    bad["visual.transformer.resblocks.0.attn.in_proj_weight"] = torch.zeros(100, 96)  # not 3 x heads x 64
    with pytest.raises(ModelError, match="in_proj_weight"):
        build_towers(bad, TINY_AUTO_CONFIG, auto=True)
    bad = dict(sd)
    del bad["visual.transformer.resblocks.0.mlp.c_proj.bias"]
    with pytest.raises(ModelError, match=r"c_proj\.bias"):
        build_towers(bad, TINY_AUTO_CONFIG, auto=True)
    bad = dict(sd)
    bad["visual.conv1.weight"] = torch.zeros(96, 3, 32, 32)  # another patch size
    with pytest.raises(ModelError, match="patch size"):
        build_towers(bad, TINY_AUTO_CONFIG, auto=True)


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_embedding_gives_the_serial_results(tiny_clip: tuple[Path, Any]) -> None:
    model = load_model(str(tiny_clip[0]))
    images, texts = _images(), ["a red circle", "a blue square"]
    want_img, want_txt = model.embed_images(images), model.embed_texts(texts)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                np.testing.assert_allclose(model.embed_images(images), want_img, atol=1e-6)
                np.testing.assert_allclose(model.embed_texts(texts), want_txt, atol=1e-6)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
