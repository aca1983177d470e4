"""The configuration: precedence, sources, errors that name the line, `config show|init`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from isearchd.cli.config import config_app
from isearchd.config import settings
from isearchd.config.file import default_config_text, describe, load_config
from isearchd.config.home import data_home, default_bind
from isearchd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "isearch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    cfg = load_config(environ={"ISEARCH_CONFIG": str(tmp_path / "missing.toml")})
    assert cfg.file is None
    assert cfg.home == Path("~/.isearch").expanduser()
    assert cfg.service.bind == str(cfg.home / settings.SOCKET_NAME)
    assert cfg.service.log_file == cfg.home / settings.LOG_NAME
    assert cfg.service.token is None
    assert cfg.service.log_level == "info"
    assert cfg.model.name == settings.DEFAULT_MODEL
    assert (cfg.model.device, cfg.model.threads, cfg.model.batch_size, cfg.model.precision) == (
        "cpu",
        0,
        32,
        "fp32",
    )
    assert cfg.watch == ()
    assert {s.kind for _, _, s in describe(cfg)} == {"default"}


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'home = "/srv/pics-home"\n[service]\nlog_level = "debug"\n[model]\nname = "ViT-8Y"\nthreads = 2\n',
    )
    env = {"ISEARCH_MODEL": "RN-19L", "ISEARCH_THREADS": "3"}
    cfg = load_config(path, overrides={"model": "ViT-63LY", "bind": None}, environ=env)
    assert cfg.model.name == "ViT-63LY"
    assert cfg.source("model.name").kind == "cli"
    assert cfg.model.threads == 3
    assert str(cfg.source("model.threads")) == "environment ISEARCH_THREADS"
    assert cfg.service.log_level == "debug"
    assert str(cfg.source("service.log_level")) == f"config file {path}:3"
    assert cfg.home == Path("/srv/pics-home")
    assert cfg.source("home").detail == f"{path}:1"
    # bind was passed as None (option not given): the default, derived from the file's home
    assert cfg.service.bind == "/srv/pics-home/isearch.sock"
    assert cfg.source("bind").kind == "default"


def test_user_config_file_found_through_isearch_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nname = "ViT-22L"\n')
    cfg = load_config(environ={"ISEARCH_CONFIG": str(path)})
    assert cfg.file == path
    assert cfg.model.name == "ViT-22L"


def test_environment_home_and_empty_variables(tmp_path: Path) -> None:
    cfg = load_config(
        environ={
            "ISEARCH_CONFIG": str(tmp_path / "none.toml"),
            "ISEARCH_HOME": str(tmp_path),
            "ISEARCH_BIND": "",
        }
    )
    assert cfg.home == tmp_path
    assert cfg.service.bind == str(tmp_path / "isearch.sock")  # an empty variable counts as unset


def test_tcp_bind_log_to_stderr_and_token(tmp_path: Path) -> None:
    path = write(tmp_path, '[service]\nbind = "0.0.0.0:8080"\nlog_file = "-"\ntoken = "s3cret"\n')
    cfg = load_config(path, environ={})
    assert cfg.service.bind == "0.0.0.0:8080"
    assert cfg.service.log_file is None
    assert cfg.service.token == "s3cret"
    shown = {key: value for key, value, _ in describe(cfg)}
    assert "s3cret" not in json.dumps(shown)


def test_watch_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[watch]]\npath = "~/Pictures"\nexclude = ["**/.thumbnails/**"]\n\n'
        '[[watch]]\npath = "/data/scans"\ndb = "scans"\n',
    )
    cfg = load_config(path, environ={})
    assert [(w.path, w.db, w.exclude) for w in cfg.watch] == [
        (Path("~/Pictures").expanduser(), "default", ("**/.thumbnails/**",)),
        (Path("/data/scans"), "scans", ()),
    ]
    assert cfg.source("watch").detail == f"{path}:1"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[service]\nbind = "x"\nlog_levl = "debug"\n', 3, "did you mean 'log_level'"),
        ('home = "/x"\n\n[servce]\nbind = "x"\n', 3, "did you mean 'service'"),
        ('colour = "red"\n', 1, "unknown setting 'colour'"),
        ('[[watch]]\npath = "/a"\n[[watch]]\npath = "/b"\nexlude = []\n', 5, "did you mean 'exclude'"),
    ],
)
def test_unknown_key_names_its_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    assert f"{path}:{line}:" in exc.value.message
    assert fragment in exc.value.message


def test_malformed_toml_names_line_and_shows_it(tmp_path: Path) -> None:
    path = write(tmp_path, '# comment\n[model]\nname = "ViT-8Y\nthreads = 2\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    assert re.search(rf"{re.escape(str(path))}:3:\d+: invalid TOML", exc.value.message)
    assert 'name = "ViT-8Y' in exc.value.message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[model]\nname = "ViT-8Y"\nthreads = "four"\n', 3, "must be an integer"),
        ("[model]\nbatch_size = true\n", 2, "must be an integer"),
        ("[service]\nbind = 8080\n", 2, "must be a string"),
        ('[service]\nlog_level = "loud"\n', 2, "not one of debug"),
        ('[model]\nprecision = "fp16"\n', 2, "not one of fp32, int8"),
        ("[model]\nbatch_size = 0\n", 2, "from 1 to 1024"),
        ('[service]\nbind = "0.0.0.0:99999"\n', 2, "port 1-65535"),
        ('[[watch]]\ndb = "x"\n', 1, "needs a path"),
        ('[[watch]]\npath = "relative/dir"\n', 2, "must be absolute"),
        ('[[watch]]\npath = "/a"\ndb = "../up"\n', 3, "database name"),
        ('model = "ViT-8Y"\n', 1, "must be a table"),
    ],
)
def test_bad_values_name_their_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    assert f"{path}:{line}" in exc.value.message
    assert fragment in exc.value.message


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ISEARCH_BATCH_SIZE"):
        load_config(environ={"ISEARCH_CONFIG": "/nonexistent.toml", "ISEARCH_BATCH_SIZE": "lots"})
    with pytest.raises(ConfigError, match="environment ISEARCH_LOG_LEVEL"):
        load_config(environ={"ISEARCH_CONFIG": "/nonexistent.toml", "ISEARCH_LOG_LEVEL": "chatty"})


def test_explicit_missing_file_and_unknown_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_config(overrides={"colour": "red"}, environ={"ISEARCH_CONFIG": "/nonexistent.toml"})


def test_shipped_default_is_the_canonical_file() -> None:
    canonical = (REPO / "config" / "isearch.toml").read_bytes()
    assert (REPO / "isearchd" / "defaults" / "isearch.toml").read_bytes() == canonical
    assert default_config_text().encode("utf-8") == canonical


def test_default_file_documents_the_built_in_defaults(tmp_path: Path) -> None:
    """As shipped it changes nothing; uncommented, every setting equals the code's default."""
    text = default_config_text()
    as_shipped = load_config(write(tmp_path, text, "a.toml"), environ={})
    no_file = load_config(environ={"ISEARCH_CONFIG": str(tmp_path / "none.toml")})
    assert as_shipped == dataclasses.replace(no_file, file=as_shipped.file)

    uncommented = re.sub(r"(?m)^#(?=[\[a-z])", "", text)
    cfg = load_config(write(tmp_path, uncommented, "b.toml"), environ={})
    assert (cfg.home, cfg.service, cfg.model) == (no_file.home, no_file.service, no_file.model)
    assert len(cfg.watch) == 1  # the example [[watch]] table is valid
    # every setting the loader knows is documented in the file
    for key, _, _ in describe(cfg):
        if not key.startswith("watch"):
            assert re.search(rf"(?m)^#{key.rsplit('.', 1)[-1]} = ", text), key
    for var in ("ISEARCH_HOME", "ISEARCH_BIND", "ISEARCH_MODEL", "ISEARCH_LOG_LEVEL", "ISEARCH_TOKEN"):
        assert f"Environment: {var}" in text


# -- the typer sub-app ---------------------------------------------------------------------------


def test_config_init_writes_default_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "sub" / "isearch.toml"
    result = runner.invoke(config_app, ["init", "--config", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == default_config_text()
    assert target.stat().st_mode & 0o077 == 0

    target.write_text("# mine\n", encoding="utf-8")
    result = runner.invoke(config_app, ["init", "--config", str(target)])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert target.read_text(encoding="utf-8") == "# mine\n"

    result = runner.invoke(config_app, ["init", "--config", str(target), "--force"])
    assert result.exit_code == 0
    assert target.read_text(encoding="utf-8") == default_config_text()


def test_config_init_default_location_is_the_user_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(config_app, ["init"])
    assert result.exit_code == 0, result.output
    assert settings.user_config_path().read_text(encoding="utf-8") == default_config_text()


def test_config_show_prints_values_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[model]\nname = "ViT-8Y"\n')
    monkeypatch.setenv("ISEARCH_LOG_LEVEL", "warning")
    result = CliRunner().invoke(config_app, ["show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "ViT-8Y" in lines["model.name"] and f"config file {path}:2" in lines["model.name"]
    assert (
        "warning" in lines["service.log_level"]
        and "environment ISEARCH_LOG_LEVEL" in lines["service.log_level"]
    )
    assert "environment ISEARCH_HOME" in lines["home"]  # tests/conftest.py sets it
    assert "[default]" in lines["model.device"]

    result = CliRunner().invoke(config_app, ["show", "--config", str(path), "--json"])
    data = json.loads(result.output)
    by_key = {row["key"]: row for row in data["settings"]}
    assert by_key["model.name"] == {"key": "model.name", "value": "ViT-8Y", "source": f"config file {path}:2"}
    assert data["file"] == str(path) and data["file_exists"] is True


def test_config_show_reports_errors_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nnmae = 'x'\n")
    result = CliRunner().invoke(config_app, ["show", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: unknown setting 'model.nmae'" in result.output


def test_data_home_follows_the_config_file_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Daemon, CLI and Python client resolve the data home in one place: env > config > default."""
    from isearchd.client import Client

    config = tmp_path / "isearch.toml"
    config.write_text(f'home = "{tmp_path / "photos-home"}"\n')
    monkeypatch.setenv("ISEARCH_CONFIG", str(config))
    monkeypatch.delenv("ISEARCH_HOME")
    assert data_home() == tmp_path / "photos-home"
    assert default_bind() == str(tmp_path / "photos-home" / "isearch.sock")
    assert Client().address.path == str(tmp_path / "photos-home" / "isearch.sock")

    monkeypatch.setenv("ISEARCH_HOME", str(tmp_path / "env-home"))  # the environment wins
    assert data_home() == tmp_path / "env-home"

    monkeypatch.delenv("ISEARCH_HOME")
    config.write_text("home = 5\n")
    with pytest.raises(ConfigError, match=r"isearch\.toml:1"):
        data_home()


def test_ui_settings_from_file_environment_and_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[ui]\nlisten = "127.0.0.1:9000"\ncache_mb = 64\n')
    cfg = load_config(path, environ={})
    assert (cfg.ui.listen, cfg.ui.cache_mb) == ("127.0.0.1:9000", 64)
    assert str(cfg.source("ui.listen")).startswith("config file")
    env = load_config(path, environ={"ISEARCH_UI_LISTEN": "[::1]:9001"})
    assert env.ui.listen == "[::1]:9001"
    cli = load_config(path, overrides={"ui.listen": "127.0.0.1:9002"}, environ={})
    assert cli.ui.listen == "127.0.0.1:9002"
    assert load_config(environ={"ISEARCH_CONFIG": str(tmp_path / "none.toml")}).ui.listen is None
    for bad in ("8765", "localhost", "host:port", "127.0.0.1:70000"):
        path.write_text(f'[ui]\nlisten = "{bad}"\n')
        with pytest.raises(ConfigError, match=r"ui\.listen must be HOST:PORT"):
            load_config(path, environ={})


def test_people_settings_from_file_environment_and_their_checks(tmp_path: Path) -> None:
    from isearchd.models.dlib_faces import DlibFaceModels

    default = load_config(environ={}).people
    assert (default.enabled, default.min_faces, default.max_distance) == (True, 3, 0.35)
    assert default.max_distance == DlibFaceModels.match_distance  # the face models' measured distance
    path = write(tmp_path, "[people]\nenabled = false\nmin_faces = 4\nmax_distance = 0.45\n")
    config = load_config(path, environ={})
    assert (config.people.enabled, config.people.min_faces, config.people.max_distance) == (False, 4, 0.45)
    assert config.source("people.max_distance").kind == "file"
    env = {"ISEARCH_PEOPLE": "yes", "ISEARCH_PEOPLE_MAX_DISTANCE": "0.6"}
    from_env = load_config(path, environ=env).people
    assert (from_env.enabled, from_env.max_distance) == (True, 0.6)
    assert ("people.enabled", "on", load_config(path, environ=env).source("people.enabled")) in describe(
        load_config(path, environ=env)
    )
    for text, fragment in (
        ("[people]\nenabled = 1\n", "true or false"),
        ("[people]\nmax_distance = 2.0\n", "from 0.1 to 1"),
        ("[people]\nmax_distance = 'near'\n", "a number"),
        ("[people]\nmin_faces = 1\n", "from 2 to 1000"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            load_config(write(tmp_path, text, "bad.toml"), environ={})
    with pytest.raises(ConfigError, match=r"ISEARCH_PEOPLE.*true or false"):
        load_config(environ={"ISEARCH_PEOPLE": "maybe"})


def test_words_language_from_file_and_environment(tmp_path: Path) -> None:
    from isearchd.models.ocr_languages import LANGUAGES

    default = load_config(environ={}).words
    assert default.language == settings.DEFAULT_WORDS_LANGUAGE and LANGUAGES[default.language].packaged
    path = write(tmp_path, '[words]\nlanguage = "Korean"\n')
    config = load_config(path, environ={})
    assert config.words.language == "korean" and config.source("words.language").kind == "file"
    assert ("words.language", "korean", config.source("words.language")) in describe(config)
    assert load_config(path, environ={"ISEARCH_WORDS_LANGUAGE": "latin"}).words.language == "latin"
    with pytest.raises(ConfigError, match=r"bad\.toml:2: the words language is empty"):
        load_config(write(tmp_path, '[words]\nlanguage = ""\n', "bad.toml"), environ={})
