"""``isearch model list|pull|import``, and making a model ready before the daemon starts.

The same commands fetch the text recognition models of words in pictures: a key ``ocr-LANG``
(``ocr-korean``) names a language of ``isearchd.models.ocr_languages`` instead of a TinyCLIP key.

``prepare_model`` is shared with ``service start``: missing weights of a registry key are
downloaded (with progress) and the ONNX Runtime export is built here, in the foreground, rather
than silently inside the daemon's start.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from isearchd.cli.options import CONTEXT, BindOpt, DbOpt, VersionOpt, effective_config
from isearchd.cli.output import ProgressBar
from isearchd.config import settings
from isearchd.errors import NotFound

# `service start` downloads missing weights itself; when nothing at all arrives for this long (no
# network) it gives up with the error that names `model pull` (which keeps trying for 25 s).
START_DOWNLOAD_FIRST_BYTE_S = 5.0


class Exporter(StrEnum):
    builder = "builder"
    torch = "torch"


ExporterOpt = Annotated[
    Exporter | None,
    typer.Option(
        "--exporter",
        case_sensitive=False,
        help="Make the ONNX Runtime export again with this exporter: builder (from the weights, no "
        "torch) or torch (needs torch) [default: keep a cached export, else the config's, else builder].",
    ),
]

model_app = typer.Typer(
    help="List, download and import TinyCLIP model weights and the languages of words in pictures.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)


@model_app.command("list")
def model_list(db: DbOpt = None, bind: BindOpt = None, version: VersionOpt = False) -> None:
    """List the model keys with their README figures and whether their weights are cached."""
    from isearchd.models import weights
    from isearchd.models.registry import MODELS

    header = (
        f"  {'KEY':<9} {'ARCHITECTURE':<36} {'DIM':>4} {'ACC@1':>6} {'MACS(G)':>7} {'PAIRS/S':>7}  WEIGHTS"
    )
    typer.echo(header)
    for key, spec in MODELS.items():
        mark = "*" if spec.is_default else " "
        if weights.is_cached(key):
            size = weights.cached_path(key).stat().st_size
            cached = f"cached ({size / 1024 / 1024:.1f} MB)"
        else:
            cached = "not cached"
        typer.echo(
            f"{mark} {key:<9} {spec.arch:<36} {spec.dim:>4} {spec.acc1:>6.1f} {spec.macs:>7.1f} "
            f"{spec.throughput:>7,}  {cached}"
        )
    typer.echo(f"* default model. Weights cache: {settings.weights_cache_dir()}")
    typer.echo("Get weights with `isearch model pull KEY`, or offline with `isearch model import KEY FILE`.")
    typer.echo()
    _list_languages()


def _list_languages() -> None:
    """The languages of words in pictures, and which recognition models are here."""
    from isearchd.models import ocr_languages

    typer.echo("Languages of words in pictures ([words] language):")
    typer.echo(f"  {'LANGUAGE':<20} {'READS':<58} MODEL")
    for key, lang in ocr_languages.LANGUAGES.items():
        if lang.packaged:
            state = "packaged with rapidocr"
        elif ocr_languages.is_cached(key):
            state = f"cached ({ocr_languages.cache_file(key).stat().st_size / 1024 / 1024:.1f} MB)"
        else:
            state = "not cached"
        typer.echo(f"{'*' if lang.packaged else ' '} {key:<20} {lang.reads:<58} {state}")
    typer.echo(
        "* default. Get another with `isearch model pull ocr-LANG`, or offline with "
        "`isearch model import ocr-LANG FILE`."
    )


def _known_key(key: str) -> str:
    from isearchd.models.registry import MODELS

    if key not in MODELS:
        from isearchd.errors import ModelError

        raise ModelError(f"unknown model {key!r}; use one of {', '.join(MODELS)}")
    return key


@model_app.command("pull")
def model_pull(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="Model key or ocr-LANGUAGE (see `isearch model list`).")
    ],
    exporter: ExporterOpt = None,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Download a model's weights into the cache and prepare them for ONNX Runtime (ocr-LANGUAGE:
    the text recognition model of that language of words in pictures)."""
    if _is_language(key):
        _pull_language(key)
        return
    _known_key(key)
    config = effective_config()
    path = _download(key)
    typer.echo(f"Weights for {key} saved to {path} ({path.stat().st_size / 1024 / 1024:.1f} MB)")
    prepare_model(
        key, config.model.precision, config.model.device, *_exporter(config.model.exporter, exporter)
    )


@model_app.command("import")
def model_import(
    key: Annotated[
        str, typer.Argument(metavar="KEY", help="Model key (or ocr-LANGUAGE) the file holds weights for.")
    ],
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A checkpoint (.pt) of that model; for ocr-: an .onnx file."),
    ],
    exporter: ExporterOpt = None,
    db: DbOpt = None,
    bind: BindOpt = None,
    version: VersionOpt = False,
) -> None:
    """Import weights for a model from a file (for machines without network access)."""
    from isearchd.models import importer

    if _is_language(key):
        _import_language(key, file)
        return
    _known_key(key)
    config = effective_config()
    if not file.expanduser().is_file():
        raise NotFound(f"{file}: no such file")
    started: list[float] = []

    def exporting() -> None:  # the check is the export, which takes seconds: say so
        typer.echo(f"Preparing {key} for ONNX Runtime (fp32, once per weights file)...", err=True, nl=False)
        started.append(time.monotonic())

    try:
        path = importer.import_weights(
            key, file.expanduser(), _exporter(config.model.exporter, exporter)[0], exporting=exporting
        )
    except BaseException:
        if started:
            typer.echo(err=True)  # the error goes on a line of its own
        raise
    if started:
        typer.echo(f" done ({time.monotonic() - started[0]:.1f} s)", err=True)
    typer.echo(f"Imported {file} as the weights of {key}: {path}")
    prepare_model(
        key, config.model.precision, config.model.device, *_exporter(config.model.exporter, exporter)
    )


def _is_language(key: str) -> bool:
    from isearchd.models.ocr_languages import OCR_PREFIX

    return key.lower().startswith(OCR_PREFIX)


def _pull_language(key: str) -> None:
    """`model pull ocr-LANG`: the language's recognition model into the cache, with progress."""
    from isearchd.models import ocr_languages

    lang = ocr_languages.get_language(key)
    progress = ProgressBar(f"Downloading {lang.pull_name}", "MB", scale=1024 * 1024, fmt="{:.1f}")
    try:
        path = ocr_languages.pull(lang.key, progress=lambda done, total: progress.update(done, total))
    finally:
        progress.close()
    size = path.stat().st_size / 1024 / 1024
    typer.echo(f"Text recognition model for {lang.key} saved to {path} ({size:.1f} MB)")
    _language_hint(lang.key)


def _import_language(key: str, file: Path) -> None:
    """`model import ocr-LANG FILE`: a recognition model fetched elsewhere, checked, into the cache."""
    from isearchd.models import ocr_languages

    lang = ocr_languages.get_language(key)
    path = ocr_languages.import_model(lang.key, file)
    typer.echo(f"Imported {file} as the text recognition model for {lang.key}: {path}")
    _language_hint(lang.key)


def _language_hint(language: str) -> None:
    config = effective_config()
    if config.words.language != language:
        typer.echo(
            f'To read words in {language}, set [words] language = "{language}" in the config file '
            "and restart the service: pictures already read are read again in the background."
        )


def _exporter(configured: str, given: Exporter | None) -> tuple[str, bool]:
    """(exporter, replace): an exporter given on the command line makes the export again."""
    return (given.value, True) if given is not None else (configured, False)


def _download(key: str, first_byte_s: float | None = None) -> Path:
    """`model pull`: the weights of ``key`` into the cache, with a progress display."""
    from isearchd.models import weights

    progress = ProgressBar(f"Downloading {key}", "MB", scale=1024 * 1024, fmt="{:.1f}")
    try:
        return weights.pull(
            key, progress=lambda done, total: progress.update(done, total), first_byte_s=first_byte_s
        )
    finally:
        progress.close()


def prepare_model(
    model: str, precision: str, device: str, exporter: str = "builder", replace: bool = False
) -> None:
    """Make ``model`` ready for the daemon's start: weights in the cache, ONNX Runtime export built.

    Weights missing for a registry key are downloaded as `model pull` does (giving up soon when
    nothing arrives: `WeightsMissing` names the URL, the cache path and `model pull`/`model
    import`). The export is made for the precision the daemon will run (fp32 unless int8 is asked
    for; int8 is quantised from the fp32 export, so it makes both). It is only a head start: when
    it fails, the daemon tries again at its start and runs fp32 in torch if it must, so a failure
    here is a warning. CUDA/MPS devices run in torch and need no export. ``exporter`` makes the
    export on a cache miss; ``replace`` makes it again even if one is cached.
    """
    from isearchd.errors import ModelError, WeightsMissing
    from isearchd.models import backend, weights
    from isearchd.models.registry import get_spec
    from isearchd.models.resolve import resolve

    try:
        resolved = resolve(model)
    except WeightsMissing:
        key = get_spec(model).key
        url = weights.download_url(key)
        typer.echo(f"The weights of {key} are not cached yet; downloading {url}", err=True)
        path = _download(key, first_byte_s=START_DOWNLOAD_FIRST_BYTE_S)
        typer.echo(f"Weights for {key} saved to {path}", err=True)
        resolved = resolve(model)
    if device != "cpu" or (backend.export_cached(resolved, precision) and not replace):
        return
    what = f"Preparing {resolved.key} for ONNX Runtime ({precision}, once per weights file)..."
    typer.echo(what, err=True, nl=False)
    started = time.monotonic()
    try:
        backend.ensure_export(resolved, precision, exporter, replace=replace)
    except ModelError as exc:
        typer.echo(err=True)
        typer.secho(
            f"Warning: {resolved.key} could not be prepared for ONNX Runtime ({exc.message}); "
            "the service tries again when it starts",
            err=True,
            fg=typer.colors.YELLOW,
        )
        return
    typer.echo(f" done ({time.monotonic() - started:.1f} s)", err=True)
