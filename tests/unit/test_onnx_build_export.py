"""The export path with the torch-free builder: what ``model pull|import`` and the daemon run.

- the builder's child process exports a registry key with no torch importable, fp32 and int8,
  and its int8 graphs quantise the same matrices as the torch exporter's;
- the tiny trained model, exported by the builder and by torch, ranks the held-out test set the
  same (top 10 of every caption);
- a config the builder cannot build goes to the torch exporter, saying why.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import open_clip
import pytest
import torch

from isearchd.models import OnnxModel, load_model
from isearchd.models.backend import ensure_export
from isearchd.models.exports import export_paths, weights_id
from isearchd.models.onnx_export import export_model
from isearchd.models.resolve import resolve
from isearchd.models.synthetic import write_official_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import shapes

# Float and integer results depend on the CPU's kernels: .ci/run runs these again on AVX2 ones.
pytestmark = pytest.mark.kernels

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-clip.pt"
PER_CLASS = 5  # held-out images per class, as tests/unit/test_tiny_model.py


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ISEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _exporter(path: Path) -> str:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}["isearch.exporter"]


def _quantised(path: Path) -> Counter[str]:
    """What the quantiser made of a graph: node kinds that involve int8."""
    nodes = onnx.load(str(path)).graph.node
    return Counter(n.op_type for n in nodes if "Integer" in n.op_type or "Quantize" in n.op_type)


_NO_TORCH = textwrap.dedent(
    """
    import sys
    for name in ("torch", "open_clip", "torchvision"):
        sys.modules[name] = None  # any import of them fails
    from isearchd.models.onnx_build_export import main
    status = main(sys.argv[1:])
    assert not any(name in sys.modules and sys.modules[name] is not None for name in ("torch", "open_clip"))
    sys.exit(status)
    """
)


def test_the_builder_exports_without_torch_and_quantises_the_same_matrices(
    tmp_path: Path, cache: Path
) -> None:
    checkpoint = write_official_checkpoint("ViT-8Y", tmp_path / "vit8y.pt", seed=3)
    wid = weights_id(checkpoint)
    stale = export_paths("ViT-8Y", wid, "fp32").directory / "image-fp32-v1.onnx"  # an export of version 1
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a graph of the torch exporter, before graphs said which exporter made them")
    env = {**os.environ, "ISEARCH_CACHE": str(cache), "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, "ViT-8Y", str(checkpoint), "int8"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert not stale.exists()
    built_fp32, built_int8 = export_paths("ViT-8Y", wid, "fp32"), export_paths("ViT-8Y", wid, "int8")
    assert built_fp32.exist() and built_int8.image.is_file() and built_int8.text.is_file()
    assert _exporter(built_fp32.image) == _exporter(built_fp32.text) == "builder"
    built = {
        name: _quantised(path) for name, path in (("image", built_int8.image), ("text", built_int8.text))
    }
    ours = OnnxModel(key="ViT-8Y", paths=built_int8, weights_id=wid, precision="int8", threads=2)
    texts, images = ["a red circle", "two dogs on a beach at night"], [shapes.render("red", "circle", seed=4)]
    ours_vectors = ours.embed_texts(texts), ours.embed_images(images)

    torch.set_num_threads(2)
    torch_int8 = export_model(load_model("ViT-8Y", weights=checkpoint), "int8", replace=True)
    assert _exporter(torch_int8.image) == "torch"
    assert built == {"image": _quantised(torch_int8.image), "text": _quantised(torch_int8.text)}
    assert built["image"]["MatMulInteger"] == 4 * 10 + 1  # 10 blocks x (qkv, out, fc, proj), proj
    theirs = OnnxModel(key="ViT-8Y", paths=torch_int8, weights_id=wid, precision="int8", threads=2)
    for a, b in zip(ours_vectors, (theirs.embed_texts(texts), theirs.embed_images(images)), strict=True):
        assert float((a * b).sum(axis=1).min()) >= 0.999  # int8 of fp32 graphs that agree to 1e-7


def test_the_tiny_model_ranks_the_test_set_the_same(tmp_path: Path) -> None:
    """Held-out renders of every class; each caption's top 10 from both exporters' graphs."""
    resolved = resolve(str(TINY))
    built = ensure_export(resolved, "fp32")  # the default exporter: the builder
    assert _exporter(built.image) == "builder"
    ours = OnnxModel(key=resolved.key, paths=built, weights_id="b", threads=2)
    torch.set_num_threads(2)
    exported = export_model(load_model(str(TINY)), "fp32", replace=True)
    assert _exporter(exported.image) == "torch"
    theirs = OnnxModel(key=resolved.key, paths=exported, weights_id="t", threads=2)
    images = [
        shapes.render(colour, shape, shapes.HELD_OUT_SEED + i, size=64 if i % 2 == 0 else 160)
        for colour, shape in shapes.CLASSES
        for i in range(PER_CLASS)
    ]
    captions = [shapes.caption(colour, shape) for colour, shape in shapes.CLASSES]
    rankings = []
    for model in (ours, theirs):
        scores = model.embed_texts(captions) @ model.embed_images(images).T
        rankings.append(np.argsort(-scores, axis=1, kind="stable")[:, :10])
    np.testing.assert_array_equal(rankings[0], rankings[1])


def test_a_config_the_builder_cannot_build_goes_to_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Layer scale in the text tower (open_clip's ``ls_init_value``): torch builds it, the builder not."""
    config = json.loads(TINY.with_suffix(".json").read_text(encoding="utf-8"))
    config["text_cfg"]["ls_init_value"] = 0.5
    checkpoint = tmp_path / "scaled.pt"
    checkpoint.with_suffix(".json").write_text(json.dumps(config), encoding="utf-8")
    torch.save(open_clip.model.CLIP(**config).state_dict(), checkpoint)
    with caplog.at_level(logging.WARNING, logger="isearchd.models.backend"):
        paths = ensure_export(resolve(str(checkpoint)), "fp32")
    assert "cannot be built without torch: config keys text.ls_init_value" in caplog.text
    assert "using the torch exporter" in caplog.text
    assert _exporter(paths.image) == "torch"
