"""The ONNX Runtime path: export, parity with torch for all 11 keys, int8, tokenizer, no torch.

Random checkpoints in the official layout (``isearchd.models.synthetic``) are exported once per
module into a shared cache (exports are what takes the time: ~2-5 s per model on 2 cores), then
every test reads that cache.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from isearchd.errors import InvalidRequest, ModelError
from isearchd.models import MODELS, Model, OnnxModel, load_model
from isearchd.models import backend as backend_module
from isearchd.models.exports import INT8_RECIPE, export_paths
from isearchd.models.onnx_export import export_model
from isearchd.models.synthetic import write_official_checkpoint
from isearchd.models.tokenizer import ClipTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from shapes import render

# Float and integer results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

MIN_COSINE = 0.9999  # ONNX Runtime fp32 against torch fp32
# dynamic int8 against fp32, on every CPU (measured 0.998-0.9995 on the tiny model and random
# weights alike on AVX-512 VNNI, AVX2 and SSE4.2 kernels: export_steps.QUANTIZATION)
MIN_COSINE_INT8 = 0.995
# int8 on another CPU's kernels against this one's: the integer products are exact everywhere, only
# the float parts around them (dequantisation, softmax, layer norm) round differently
MIN_COSINE_ACROSS_CPUS = 0.99999
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "tiny-clip.pt"
ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "a photo of a cat",
    "Ein Hund läuft über die Wiese! 🐕",
    " ".join(["a very long caption about a small red circle on a blue background"] * 12),  # > 77 tokens
]
TOKENIZER_TEXTS = [
    *TEXTS,
    "",
    "   ",
    "Ünïcödé café 東京タワー 🐱🐶 naïve",
    "It's 3.14 o'clock, isn't it?! We'll see; they'd've",
    "&amp;lt;b&amp;gt; HTML &quot;quoted&quot; &#x1F600;",
    "<start_of_text> hi <end_of_text>",
    "tab\tnew\nline   spaces",
    "ＦＵＬＬＷＩＤＴＨ ｆｏｒｍｓ",
    "mojibake Ã©tÃ© schÃ¶n",
    "12345678901234567890 numbers 2024-11-24",
    "word " * 100,
    "Ελληνικά кириллица עברית العربية हिन्दी",
]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    smooth = (np.linspace(0, 255, 300 * 260 * 3).reshape(260, 300, 3) % 256).astype(np.uint8)
    return [
        Image.fromarray(rng.integers(0, 256, (250, 320, 3), dtype=np.uint8)),
        Image.fromarray(smooth).convert("L"),  # any mode goes through to_rgb
    ]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def shared_cache(module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """All tests of this module share one weights cache, so each model is exported once."""
    monkeypatch.setenv("ISEARCH_CACHE", str(module_cache))
    yield module_cache


def _checkpoint(key: str, cache: Path) -> Path:
    path = cache / "random" / MODELS[key].file_name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_official_checkpoint(key, path, seed=list(MODELS).index(key))
    return path


@pytest.mark.parametrize("key", list(MODELS))
def test_onnx_matches_torch(key: str, shared_cache: Path) -> None:
    torch.set_num_threads(2)
    checkpoint = _checkpoint(key, shared_cache)
    reference = load_model(key, weights=checkpoint)
    export_model(reference, "fp32")
    onnx_model = load_model(key, weights=checkpoint, backend="onnx", threads=2)
    assert isinstance(onnx_model, OnnxModel)
    assert (onnx_model.key, onnx_model.dim, onnx_model.image_size) == (key, MODELS[key].dim, 224)
    assert onnx_model.weights_id == reference.weights_id
    images = _images()
    assert _min_cosine(onnx_model.embed_images(images), reference.embed_images(images)) >= MIN_COSINE
    assert _min_cosine(onnx_model.embed_images(images[:1]), reference.embed_images(images[:1])) >= MIN_COSINE
    # Batches of different lengths exercise the dynamic sequence axis, a single text batch 1.
    assert _min_cosine(onnx_model.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= MIN_COSINE
    assert _min_cosine(onnx_model.embed_texts(TEXTS[:1]), reference.embed_texts(TEXTS[:1])) >= MIN_COSINE
    if key not in ("ViT-45LY", "ViT-8Y"):  # the daemon-path tests below reuse these two
        for precision in ("fp32",):
            paths = export_paths(key, reference.weights_id, precision)
            for file in (paths.image, paths.text, paths.token_table):
                file.unlink()
        checkpoint.unlink()


def test_rows_are_unit_vectors_and_empty_inputs(shared_cache: Path) -> None:
    model = load_model("ViT-8Y", weights=_checkpoint("ViT-8Y", shared_cache), backend="onnx", threads=2)
    vectors = model.embed_texts(["red", "blue square"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert model.embed_images([]).shape == (0, 512)
    assert model.embed_texts([]).shape == (0, 512)
    with pytest.raises(InvalidRequest):
        model.embed_texts(["  "])


def test_int8_has_its_own_key_and_stays_close(shared_cache: Path) -> None:
    checkpoint = _checkpoint("ViT-45LY", shared_cache)
    fp32 = load_model("ViT-45LY", weights=checkpoint, backend="onnx", threads=2)
    int8 = load_model("ViT-45LY", weights=checkpoint, backend="auto", precision="int8", threads=2)
    assert isinstance(int8, OnnxModel)
    assert int8.key == "ViT-45LY+int8" and fp32.key == "ViT-45LY"
    assert int8.weights_id == fp32.weights_id
    assert _min_cosine(int8.embed_images(_images()), fp32.embed_images(_images())) >= MIN_COSINE_INT8
    assert _min_cosine(int8.embed_texts(TEXTS), fp32.embed_texts(TEXTS)) >= MIN_COSINE_INT8
    with pytest.raises(ModelError, match="ONNX Runtime"):
        load_model("ViT-45LY", weights=checkpoint, backend="torch", precision="int8")


TINY_TEXTS = ["a red circle", "a blue square", "a green triangle", "a yellow star", *TEXTS]


def test_int8_keeps_the_tiny_models_ranking() -> None:
    """On trained weights int8 is lossy but must keep what a search returns."""
    fp32 = load_model(str(TINY), backend="onnx", threads=2)
    int8 = load_model(str(TINY), backend="onnx", precision="int8", threads=2)
    assert int8.key == f"custom:{TINY.name}+int8"
    images = _images()
    assert _min_cosine(int8.embed_texts(TINY_TEXTS), fp32.embed_texts(TINY_TEXTS)) >= MIN_COSINE_INT8
    assert _min_cosine(int8.embed_images(images), fp32.embed_images(images)) >= MIN_COSINE_INT8
    # the ranking a search shows: each shape's caption still finds that shape first
    shapes = [(colour, shape) for colour in ("red", "blue", "green") for shape in ("circle", "square")]
    captions = [f"a {colour} {shape}" for colour, shape in shapes]
    pictures = [render(colour, shape, seed=11) for colour, shape in shapes]
    for model in (fp32, int8):
        scores = model.embed_texts(captions) @ model.embed_images(pictures).T
        assert list(scores.argmax(axis=1)) == list(range(len(shapes)))


# Emulated CPUs (qemu-user) whose ONNX Runtime kernels differ from this machine's: an AMD Zen 3
# (AVX2 and FMA, no AVX-512, no VNNI: int8 products pass through a saturating int16) and an
# SSE4.2-only CPU (the portable kernels). ONNX Runtime has no switch to choose its kernels; it reads
# CPUID, which qemu-user answers as the named CPU.
EMULATED_CPUS = {"EPYC-Milan": "AVX2", "Nehalem": "SSE4.2"}
_CPU_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numpy._core._multiarray_umath import __cpu_features__ as features
    sys.path.insert(0, sys.argv[2])
    from shapes import render
    from isearchd.models import load_model
    model = load_model(sys.argv[1], backend="onnx", precision="int8", threads=1)
    texts = json.loads(sys.stdin.read())
    pictures = [render(c, s, seed=11) for c in ("red", "blue") for s in ("circle", "square", "star")]
    print(json.dumps({
        "avx2": features["AVX2"], "avx512": features["AVX512F"], "vnni": features["AVX512VNNI"],
        "texts": model.embed_texts(texts).tolist(), "images": model.embed_images(pictures).tolist(),
    }))
    """
)


@pytest.mark.parametrize("cpu", list(EMULATED_CPUS))
def test_int8_embeddings_are_the_same_on_every_cpu(cpu: str) -> None:
    """A database indexed in int8 on one machine is searched on another: the kernels of an AVX2
    or SSE4.2 CPU must give what this CPU gives, not a lossier embedding."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None or platform.machine() != "x86_64":
        if os.environ.get("ISEARCH_REQUIRE_QEMU") == "1":
            pytest.fail("qemu-x86_64 is missing (.ci/run installs Debian's qemu-user)")
        pytest.skip("needs qemu-user on x86-64 to run another CPU's kernels")
    here = load_model(str(TINY), backend="onnx", precision="int8", threads=1)  # exports if needed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [qemu, "-cpu", cpu, sys.executable, "-c", _CPU_CHILD, str(TINY), str(FIXTURES)],
        input=json.dumps(TINY_TEXTS),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert not there["avx512"] and not there["vnni"]
    assert there["avx2"] == (EMULATED_CPUS[cpu] == "AVX2")
    pictures = [render(c, s, seed=11) for c in ("red", "blue") for s in ("circle", "square", "star")]
    texts_there = np.asarray(there["texts"], dtype=np.float32)
    images_there = np.asarray(there["images"], dtype=np.float32)
    assert _min_cosine(texts_there, here.embed_texts(TINY_TEXTS)) >= MIN_COSINE_ACROSS_CPUS
    assert _min_cosine(images_there, here.embed_images(pictures)) >= MIN_COSINE_ACROSS_CPUS


def test_a_new_int8_recipe_replaces_the_old_graphs() -> None:
    fp32 = load_model(str(TINY), backend="onnx", threads=1)
    int8_paths = export_paths(f"custom:{TINY.name}", fp32.weights_id, "int8")
    assert int8_paths.image.name.endswith(f"-q{INT8_RECIPE}.onnx")
    stale = [int8_paths.directory / "image-int8-v1.onnx", int8_paths.directory / "text-int8-v1.onnx"]
    for path in (int8_paths.image, int8_paths.text):
        path.unlink(missing_ok=True)
    for path in stale:
        path.write_bytes(b"an int8 graph of recipe 1")
    load_model(str(TINY), backend="onnx", precision="int8", threads=1)
    assert int8_paths.image.is_file() and int8_paths.text.is_file()
    assert not any(path.exists() for path in stale)


def test_auto_falls_back_to_torch_when_the_export_fails(
    shared_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = _checkpoint("ViT-8Y", shared_cache)

    def broken(*args: object, **kwargs: object) -> None:
        raise ModelError("ONNX export failed: simulated")

    monkeypatch.setattr(backend_module, "export_paths", lambda *a: export_paths("nowhere", "0", "fp32"))
    monkeypatch.setattr(backend_module, "_export_in_child", broken)
    with caplog.at_level(logging.WARNING, logger="isearchd.models.backend"):
        model = load_model("ViT-8Y", weights=checkpoint, backend="auto")
    assert isinstance(model, Model)
    assert "simulated" in caplog.text and "using torch" in caplog.text
    with pytest.raises(ModelError, match="simulated"):
        load_model("ViT-8Y", weights=checkpoint, backend="onnx")
    with pytest.raises(ModelError, match="simulated"):  # int8 has no torch form to fall back to
        load_model("ViT-8Y", weights=checkpoint, backend="auto", precision="int8")


def test_bad_backend_and_precision_are_refused() -> None:
    with pytest.raises(ModelError, match="backend"):
        load_model("ViT-8Y", backend="tensorflow")
    with pytest.raises(ModelError, match="precision"):
        load_model("ViT-8Y", precision="fp8")
    with pytest.raises(ModelError, match="CPU"):
        load_model("ViT-8Y", backend="onnx", device="cuda")


def test_export_in_a_child_then_daemon_style_load_imports_no_torch(shared_cache: Path) -> None:
    """A cache miss exports in a child process; the loading process never imports torch."""
    cached = shared_cache / MODELS["ViT-8Y"].file_name
    cached.write_bytes(_checkpoint("ViT-8Y", shared_cache).read_bytes())
    for child in (shared_cache / "onnx").glob("ViT-8Y-*"):
        for file in child.iterdir():
            file.unlink()
    script = textwrap.dedent(
        """
        import json, sys
        import isearchd.daemon.main, isearchd.engine.engine, isearchd.daemon.server  # what the daemon imports
        from isearchd.models import load_model
        model = load_model("ViT-8Y", backend="auto", threads=2)
        vector = model.embed_texts(["a cat"])[0]
        image = model.embed_images([__import__("PIL.Image").Image.new("RGB", (300, 200), "red")])[0]
        heavy = sorted(m for m in ("torch", "open_clip", "torchvision") if m in sys.modules)
        print(json.dumps({"key": model.key, "type": type(model).__name__, "heavy": heavy,
                          "norms": [float((vector ** 2).sum()), float((image ** 2).sum())]}))
        """
    )
    env = {**os.environ, "ISEARCH_CACHE": str(shared_cache), "PYTHONPATH": str(ROOT)}
    for _ in range(2):  # first run: export in a child; second: straight from the cache
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False, timeout=300
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["type"] == "OnnxModel" and result["key"] == "ViT-8Y"
        assert result["heavy"] == []
        np.testing.assert_allclose(result["norms"], 1.0, rtol=1e-5)


def test_tokenizer_matches_open_clip() -> None:
    ours = ClipTokenizer()
    expected = open_clip.tokenize(TOKENIZER_TEXTS).numpy()
    np.testing.assert_array_equal(ours(TOKENIZER_TEXTS), expected)
    assert ours(["word " * 100])[0, -1] == ours.eot_id  # truncated texts still end in end-of-text
    np.testing.assert_array_equal(ours(TEXTS, context_length=16), open_clip.tokenize(TEXTS, 16).numpy())


def test_packaged_vocabulary_is_open_clips() -> None:
    from isearchd.models.tokenizer import BPE_FILE_NAME, bpe_vocab_path

    theirs = Path(open_clip.__file__).with_name(BPE_FILE_NAME)
    assert bpe_vocab_path().read_bytes() == theirs.read_bytes()


def test_weights_id_is_remembered_and_follows_changes(tmp_path: Path) -> None:
    from isearchd.models.exports import file_sha256, weights_id

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first")
    first = weights_id(weights)
    assert first == file_sha256(weights)[:16]
    assert weights_id(weights) == first  # from the stamp
    weights.write_bytes(b"second, longer")
    assert weights_id(weights) == file_sha256(weights)[:16] != first
