"""Finding image files: recursion, hidden entries, extensions, symlink loops, unreadable paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isearchd.files import scan as scan_mod
from isearchd.files.scan import label_for, scan


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in [
        "a.jpg",
        "b.PNG",
        "c.JpEg",
        "notes.txt",
        "noext",
        "sub/d.webp",
        "sub/deeper/e.gif",
        "sub/deeper/f.TIFF",
        ".hidden.jpg",
        ".cache/g.jpg",
        "sub/.thumbs/h.png",
    ]:
        _touch(root / rel)
    return root


def test_walks_recursively_skipping_hidden_and_non_images(tree: Path) -> None:
    result = scan([tree])
    assert result.errors == []
    rel = sorted(os.path.relpath(f, tree) for f in result.files)
    assert rel == ["a.jpg", "b.PNG", "c.JpEg", "sub/d.webp", "sub/deeper/e.gif", "sub/deeper/f.TIFF"]
    assert all(os.path.isabs(f) for f in result.files)


def test_each_file_once_even_when_named_twice(tree: Path) -> None:
    result = scan([tree, tree / "a.jpg", tree / "sub", str(tree) + "/"])
    assert len(result.files) == 6
    assert len(set(result.files)) == 6


def test_relative_paths_become_absolute(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    result = scan(["a.jpg", "sub"])
    assert result.files == [
        str(tree / "a.jpg"),
        str(tree / "sub" / "d.webp"),
        str(tree / "sub/deeper/e.gif"),
        str(tree / "sub/deeper/f.TIFF"),
    ]


def test_missing_and_non_image_paths_are_reported_not_fatal(tree: Path) -> None:
    result = scan([tree / "nope.jpg", tree / "notes.txt", tree / "a.jpg"])
    assert result.files == [str(tree / "a.jpg")]
    reasons = {Path(e.path).name: e.reason for e in result.errors}
    assert reasons["nope.jpg"] == "no such file or directory"
    assert "not a supported image file (.txt)" in reasons["notes.txt"]


def test_an_explicitly_named_hidden_image_is_included(tree: Path) -> None:
    assert scan([tree / ".hidden.jpg"]).files == [str(tree / ".hidden.jpg")]


def test_symlink_loops_terminate(tmp_path: Path) -> None:
    root = tmp_path / "loop"
    _touch(root / "x.jpg")
    _touch(root / "inner" / "y.jpg")
    (root / "inner" / "back").symlink_to(root)  # inner/back -> root: a cycle
    (root / "self").symlink_to(root / "inner")
    result = scan([root])
    assert sorted(os.path.relpath(f, root) for f in result.files) == ["inner/y.jpg", "x.jpg"]


def test_symlinked_files_and_broken_links(tmp_path: Path) -> None:
    root = tmp_path / "links"
    target = _touch(tmp_path / "elsewhere" / "real.jpg")
    root.mkdir()
    (root / "link.jpg").symlink_to(target)
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    result = scan([root])
    assert result.files == [str(root / "link.jpg")]  # the link's own path, not resolved
    assert [(Path(e.path).name, e.reason) for e in result.errors] == [
        ("dangling.jpg", "broken symbolic link")
    ]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir
    locked = str(tree / "sub" / "deeper")

    def scandir(path: str | int):  # type: ignore[no-untyped-def]
        # an int is a folder's descriptor: pytest's clean-up of tmp_path (shutil.rmtree) walks by them
        if not isinstance(path, int) and os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    result = scan([tree])
    assert sorted(os.path.relpath(f, tree) for f in result.files) == [
        "a.jpg",
        "b.PNG",
        "c.JpEg",
        "sub/d.webp",
    ]
    assert [(e.path, e.reason) for e in result.errors] == [(locked, "permission denied")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_real_permission_denied(tree: Path) -> None:
    locked = tree / "sub" / "deeper"
    locked.chmod(0)
    try:
        result = scan([tree])
    finally:
        locked.chmod(0o755)
    assert [e.reason for e in result.errors] == ["permission denied"]
    assert len(result.files) == 4


def test_labels(tmp_path: Path) -> None:
    p = tmp_path / "dir" / "Photo 1.JPG"
    assert label_for(p, "path") == str(p)
    assert label_for(p, "name") == "Photo 1.JPG"
