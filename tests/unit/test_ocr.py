"""Reading the words in pictures (``isearchd.models.ocr``) with the real packaged models: words
drawn at test time are read back on plain backgrounds, on photos and turned a little, a photo
without text gives nothing, and the models are rapidocr's packaged files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from isearchd.models.ocr import (
    PACKAGED_MODELS,
    VERSION,
    RapidTextModels,
    TextLine,
    TextRead,
    TextWorkers,
    joined,
    packaged_models,
)
from isearchd.models.workers import PictureFile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from textpics import on_photo, pick_words, plain, scene, screenshot, words_found


@pytest.fixture(scope="module")
def models() -> RapidTextModels:
    return RapidTextModels()


def recall(models: RapidTextModels, picture: Image.Image, expected: list[str]) -> float:
    return len(words_found(expected, joined(models.read(picture)))) / len(expected)


def two_lines(seed: int) -> tuple[list[str], list[str]]:
    words = pick_words(seed, 6)
    return words, [" ".join(words[:3]), " ".join(words[3:])]


def test_the_models_are_the_packaged_files() -> None:
    found = packaged_models()
    assert {p.name for p in found.values()} == set(PACKAGED_MODELS.values())
    assert all(p.is_file() and p.parent.parent.name == "rapidocr" for p in found.values())


@pytest.mark.parametrize("size", [24, 32, 48])
def test_words_on_plain_backgrounds_are_read(models: RapidTextModels, size: int) -> None:
    words, lines = two_lines(size)
    for fg, bg in (("black", "white"), ("white", "#203040"), ("#a01010", "#f0e8d0")):
        assert recall(models, plain(lines, size=size, fg=fg, bg=bg), words) == 1.0, (fg, bg)


def test_words_on_photos_and_at_small_angles_are_read(models: RapidTextModels) -> None:
    words, lines = two_lines(5)
    assert recall(models, on_photo(lines, size=40, seed=1), words) == 1.0
    turned = on_photo(lines, size=36, seed=2, angle=4, fg="yellow", sign="#202020")
    assert recall(models, turned, words) == 1.0
    assert recall(models, plain(lines, size=32, angle=-5), words) == 1.0


def test_a_screenshot_is_read_with_its_lines_in_order(models: RapidTextModels) -> None:
    rows = [" ".join(pick_words(i, 4)) for i in range(15)]
    read = models.read(screenshot(rows))
    expected = [w for row in rows for w in row.split()]
    assert len(words_found(expected, joined(read))) >= 0.95 * len(expected)
    texts = [line.text for line in read]
    assert rows[0] in texts and rows[-1] in texts
    assert texts.index(rows[0]) < texts.index(rows[7]) < texts.index(rows[-1])  # reading order
    assert all(0 <= line.score <= 1 and line.box[2] > 0 and line.box[3] > 0 for line in read)


def test_a_photo_without_text_gives_nothing(models: RapidTextModels) -> None:
    assert models.read(scene((1920, 1080), 3)) == []
    assert models.read(Image.new("L", (300, 200), 128)) == []  # any mode, a blank picture


def test_workers_read_pictures_and_files_and_give_reasons(tmp_path: Path) -> None:
    words, lines = two_lines(7)
    saved = tmp_path / "sign.png"
    plain(lines, size=32).save(saved)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    workers = TextWorkers(RapidTextModels, 1, background=False)
    try:
        read = workers.read(
            [plain(lines, size=32), PictureFile(str(saved), 400), PictureFile(str(broken), 400)]
        )
    finally:
        workers.close()
    assert workers.version == VERSION  # the packaged language: the reader's own version
    for found in read[:2]:
        assert isinstance(found, TextRead)
        assert len(words_found(words, joined(found.lines))) == 6
    assert isinstance(read[1], TextRead) and read[1].size == (1200, 800)  # a PNG: not reduced
    assert isinstance(read[2], str) and read[2] and "\n" not in read[2]


class ScriptedReader:
    """Stands in for the text workers: returns the lines it was given for every picture."""

    version = 3

    def __init__(self, lines: list[TextLine]) -> None:
        self.lines = lines

    def read(self, pictures: list[object]) -> list[TextRead | str]:
        return [TextRead((100, 50), self.lines) for _ in pictures]

    def close(self) -> None:
        pass


def test_the_analysis_keeps_lines_by_score_and_single_characters_only_when_sure() -> None:
    from isearchd.engine.analysis import Photo
    from isearchd.engine.words import WordsAnalysis, WordsFound
    from isearchd.store.records import PhotoFile

    lines = [
        TextLine("GATE B7", (1, 1, 40, 10), 0.95),
        TextLine("smudge", (1, 20, 40, 10), 0.3),  # under min_score
        TextLine("8", (50, 1, 30, 30), 0.86),  # one character, not sure enough: a blob
        TextLine("A", (60, 1, 10, 10), 0.97),
    ]
    analysis = WordsAnalysis(ScriptedReader(lines), min_score=0.5)  # type: ignore[arg-type]
    (found,) = analysis.read(
        [Photo(PhotoFile(7, "a.jpg", "/p/a.jpg", 1), Image.new("RGB", (100, 50)))]
    ).values()
    analysis.close()
    assert isinstance(found, WordsFound) and found.size == (100, 50)
    assert [ln.text for ln in found.lines] == ["GATE B7", "A"]
