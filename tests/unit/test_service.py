"""User service: templates render to valid files; install/uninstall drive fake init tools."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from isearchd.cli.service import register
from isearchd.errors import ServiceError, ServiceNotRunning
from isearchd.service import install as service
from isearchd.service import unitfiles
from isearchd.service.readiness import is_listening, tcp_address, wait_until_listening
from isearchd.service.unitfiles import DaemonOptions

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# A fake init tool: records "<name> <args>" lines in $FAKE_LOG. The launchctl fake keeps a
# "loaded" marker so `print` answers like the real one before/after bootstrap and bootout.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
if [ "$2" = show ]; then
    printf 'MainPID=4242\\nActiveState=active\\nSubState=running\\n'
fi
if [ -n "$FAKE_FAIL" ] && [ "$2" = "$FAKE_FAIL" ]; then
    echo "Failed to $2 unit: Unit isearchd.service has a bad unit file setting." >&2
    exit 1
fi
exit 0
"""
FAKE_LAUNCHCTL = """#!/bin/sh
echo "launchctl $*" >> "$FAKE_LOG"
case "$1" in
    print) [ -f "$FAKE_STATE" ] || exit 113; printf '\\tstate = running\\n\\tpid = 99\\n' ;;
    bootstrap) touch "$FAKE_STATE" ;;
    bootout) [ -f "$FAKE_STATE" ] || exit 3; rm -f "$FAKE_STATE" ;;
esac
exit 0
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("launchctl", FAKE_LAUNCHCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path / "user"),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_STATE": str(tmp_path / "loaded"),
        "ISEARCH_HOME": str(tmp_path / "data home"),
    }


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def unit_lines(text: str) -> dict[str, list[str]]:
    """key -> values of a unit file (comments and section headers dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


# -- templates and rendering ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contrib", "shipped"),
    [
        ("contrib/systemd/isearchd.service", "isearchd/defaults/isearchd.service"),
        ("contrib/launchd/com.imgsearch.isearchd.plist", "isearchd/defaults/com.imgsearch.isearchd.plist"),
    ],
)
def test_shipped_templates_equal_contrib(contrib: str, shipped: str) -> None:
    assert (REPO / shipped).read_bytes() == (REPO / contrib).read_bytes()


def test_package_data_ships_the_defaults() -> None:
    """pyproject must ship isearchd/defaults/ so an installed wheel finds the templates."""
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["isearchd"]
    assert "defaults/*" in globs


def test_systemd_unit_renders_interpreter_options_and_environment(tmp_path: Path) -> None:
    env = {"ISEARCH_HOME": str(tmp_path / "my pics"), "ISEARCH_TOKEN": "secret", "PATH": "/usr/bin"}
    opts = DaemonOptions(model="ViT-8Y", bind="127.0.0.1:8080", log_level="debug")
    text = unitfiles.render_systemd_unit(opts, python=sys.executable, environ=env)
    assert "{{" not in text.split("[Unit]", 1)[1]
    keys = unit_lines(text)
    assert shlex.split(keys["ExecStart"][0]) == [
        str(Path(sys.executable).absolute()), "-m", "isearchd",
        "--bind", "127.0.0.1:8080", "--model", "ViT-8Y", "--log-level", "debug",
    ]  # fmt: skip
    ready = keys["ExecStartPost"][0]
    assert "-m isearchd.service.readiness" in ready and "--bind 127.0.0.1:8080" in ready
    assert ready.endswith("--pid $MAINPID")
    assert keys["Restart"] == ["on-failure"]
    assert keys["Type"] == ["simple"]
    assert keys["MemoryMax"] == ["1280M"]
    assert f'"ISEARCH_HOME={tmp_path / "my pics"}"' in keys["Environment"]
    assert "ISEARCH_LOG_FILE=-" in keys["Environment"]
    assert "secret" not in text  # the token never goes into the unit
    assert keys["StandardError"] == ["journal"]
    assert keys["WantedBy"] == ["default.target"]


def test_systemd_quoting() -> None:
    assert unitfiles.systemd_quote("/usr/bin/python3") == "/usr/bin/python3"
    assert unitfiles.systemd_quote("/a b/py") == '"/a b/py"'
    assert unitfiles.systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert unitfiles.systemd_quote("50%$x") == "50%%$$x"


def systemd_verify(unit: Path, runtime: Path) -> tuple[int, list[str], str]:
    """Run `systemd-analyze verify --user`; (exit code, lines about our unit, whole output)."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "warning"},
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "Failed to initialize manager" in output:
        pytest.skip(f"systemd-analyze cannot run here: {output.strip()}")
    return proc.returncode, [line for line in output.splitlines() if unit.name in line], output


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("home", ["plain", "with space"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, home: str) -> None:
    opts = DaemonOptions(model="ViT-8Y", home=tmp_path / home, log_level="info")
    text = unitfiles.render_systemd_unit(opts, environ={"ISEARCH_CONFIG": str(tmp_path / "c f.toml")})
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    unit = unit_dir / unitfiles.UNIT_NAME
    unit.write_text(text)
    code, own, output = systemd_verify(unit, runtime)
    assert code == 0, output
    assert own == [], output  # no warnings about our unit (unknown keys, bad paths, ...)

    # the check is real: a typo in the unit is reported
    unit.write_text(text.replace("Restart=on-failure", "Restart=on-failure\nRestrat=always"))
    assert any("Unknown key" in line for line in systemd_verify(unit, runtime)[1])


def test_launchd_plist_renders_valid_plist(tmp_path: Path) -> None:
    env = {"ISEARCH_HOME": str(tmp_path / "a&b <home>"), "ISEARCH_CACHE": str(tmp_path / "cache")}
    text = unitfiles.render_launchd_plist(
        DaemonOptions(model="ViT-8Y", bind="/tmp/x.sock"), python="/opt/py/bin/python3", environ=env,
        user_home=Path("/Users/ada"),
    )  # fmt: skip
    data = unitfiles.validate_plist(text)
    assert data["Label"] == unitfiles.LAUNCHD_LABEL
    assert data["ProgramArguments"] == [
        "/opt/py/bin/python3", "-m", "isearchd", "--bind", "/tmp/x.sock", "--model", "ViT-8Y",
    ]  # fmt: skip
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["RunAtLoad"] is True
    assert data["StandardErrorPath"] == data["StandardOutPath"] == "/Users/ada/Library/Logs/isearchd.log"
    assert data["EnvironmentVariables"] == {
        "ISEARCH_LOG_FILE": "-",
        "ISEARCH_HOME": str(tmp_path / "a&b <home>"),
        "ISEARCH_CACHE": str(tmp_path / "cache"),
    }
    with pytest.raises(ServiceError):
        unitfiles.validate_plist("<plist><dict><key>x</dict></plist>")


# -- install / uninstall against fake tools --------------------------------------------------------


def test_systemd_install_is_idempotent_and_uninstall_reverses(fake_env: dict[str, str]) -> None:
    user = Path(fake_env["HOME"])
    result = service.install(
        DaemonOptions(model="ViT-8Y"), platform="linux", user_home=user, environ=fake_env
    )
    unit = user / ".config/systemd/user/isearchd.service"
    assert result.path == unit and result.changed
    assert "-m isearchd --model ViT-8Y" in unit.read_text()
    assert calls(fake_env) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable isearchd.service",
        "systemctl --user restart isearchd.service",
    ]
    assert any("systemctl --user status isearchd" in hint for hint in result.hints)
    assert service.unit_installed("linux", user, fake_env)

    again = service.install(DaemonOptions(model="ViT-8Y"), platform="linux", user_home=user, environ=fake_env)
    assert not again.changed
    assert calls(fake_env)[-1] == "systemctl --user start isearchd.service"

    changed = service.install(
        DaemonOptions(model="RN-19L"), platform="linux", user_home=user, environ=fake_env
    )
    assert changed.changed and "--model RN-19L" in unit.read_text()
    assert calls(fake_env)[-1] == "systemctl --user restart isearchd.service"

    removed = service.uninstall(platform="linux", user_home=user, environ=fake_env)
    assert removed.changed and not unit.exists()
    assert calls(fake_env)[:2] == [
        "systemctl --user disable --now isearchd.service",
        "systemctl --user daemon-reload",
    ]
    assert not service.unit_installed("linux", user, fake_env)

    nothing = service.uninstall(platform="linux", user_home=user, environ=fake_env)
    assert not nothing.changed and calls(fake_env) == []


def test_systemd_install_reports_systemctl_failure(fake_env: dict[str, str]) -> None:
    env = {**fake_env, "FAKE_FAIL": "restart"}
    with pytest.raises(
        ServiceError, match=r"systemctl --user restart isearchd\.service` failed.*bad unit file"
    ):
        service.install(platform="linux", user_home=Path(env["HOME"]), environ=env)


def test_missing_systemctl_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    with pytest.raises(ServiceError, match="`systemctl` was not found on PATH"):
        service.install(platform="linux", user_home=tmp_path, environ=env)


def test_launchd_install_is_idempotent_and_uninstall_reverses(fake_env: dict[str, str]) -> None:
    user = Path(fake_env["HOME"])
    domain = f"gui/{os.getuid()}"
    target = f"{domain}/{unitfiles.LAUNCHD_LABEL}"
    result = service.install(DaemonOptions(), platform="darwin", user_home=user, environ=fake_env)
    plist = user / "Library/LaunchAgents/com.imgsearch.isearchd.plist"
    assert result.path == plist and result.changed
    unitfiles.validate_plist(plist.read_text())
    assert calls(fake_env) == [
        f"launchctl print {target}",
        f"launchctl enable {target}",
        f"launchctl bootstrap {domain} {plist}",
    ]
    assert (user / "Library/Logs").is_dir()

    again = service.install(DaemonOptions(), platform="darwin", user_home=user, environ=fake_env)
    assert not again.changed
    assert calls(fake_env) == [f"launchctl print {target}", f"launchctl enable {target}"]

    service.install(DaemonOptions(model="ViT-8Y"), platform="darwin", user_home=user, environ=fake_env)
    assert calls(fake_env) == [
        f"launchctl print {target}",
        f"launchctl bootout {target}",
        f"launchctl enable {target}",
        f"launchctl bootstrap {domain} {plist}",
    ]

    status = service.unit_status(platform="darwin", environ=fake_env)
    assert status.active and status.pid == 99

    service.uninstall(platform="darwin", user_home=user, environ=fake_env)
    assert not plist.exists()
    assert calls(fake_env)[-1] == f"launchctl bootout {target}"
    assert not service.unit_status(platform="darwin", environ=fake_env).active
    assert service.uninstall(platform="darwin", user_home=user, environ=fake_env).commands == ()


def test_start_stop_status_drive_systemctl(fake_env: dict[str, str], tmp_path: Path) -> None:
    service.start_unit(platform="linux", environ=fake_env)
    service.stop_unit(platform="linux", environ=fake_env)
    status = service.unit_status(platform="linux", environ=fake_env)
    assert status.active and status.pid == 4242 and status.state == "active (running)"
    assert calls(fake_env) == [
        "systemctl --user start isearchd.service",
        "systemctl --user stop isearchd.service",
        "systemctl --user show isearchd.service --property=ActiveState,SubState,MainPID",
    ]


def test_managed_by_init_needs_unit_and_user_manager(fake_env: dict[str, str], tmp_path: Path) -> None:
    user = Path(fake_env["HOME"])
    runtime = tmp_path / "runtime"
    env = {**fake_env, "XDG_RUNTIME_DIR": str(runtime)}
    assert not service.managed_by_init("linux", user, env)  # not installed
    service.install(platform="linux", user_home=user, environ=env)
    assert not service.under_systemd(env)
    assert not service.managed_by_init("linux", user, env)  # no user manager
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").touch()
    assert service.under_systemd(env)
    assert service.managed_by_init("linux", user, env)
    assert not service.under_systemd({**env, "PATH": str(tmp_path / "empty")})


def test_unsupported_platform() -> None:
    with pytest.raises(ServiceError, match="not win32"):
        service.init_system("win32")
    assert not service.unit_installed("win32")


# -- the CLI commands ------------------------------------------------------------------------------


def test_cli_install_uninstall_and_dry_run(fake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("exercises the systemd path")
    for key, value in fake_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    app = typer.Typer()
    service_app = typer.Typer()
    app.add_typer(service_app, name="service")
    register(service_app)
    runner = CliRunner()

    dry = runner.invoke(app, ["service", "install", "--dry-run", "-m", "ViT-8Y"])
    assert dry.exit_code == 0, dry.output
    assert "-m isearchd --model ViT-8Y" in dry.output and calls(fake_env) == []

    result = runner.invoke(app, ["service", "install", "-m", "ViT-8Y", "-L", "debug"])
    assert result.exit_code == 0, result.output
    assert "$ systemctl --user enable isearchd.service" in result.output
    assert "journalctl --user -u isearchd" in result.output
    unit = Path(fake_env["HOME"]) / ".config/systemd/user/isearchd.service"
    assert "--model ViT-8Y --log-level debug" in unit.read_text()

    result = runner.invoke(app, ["service", "uninstall"])
    assert result.exit_code == 0 and not unit.exists()

    monkeypatch.setenv("FAKE_FAIL", "daemon-reload")
    result = runner.invoke(app, ["service", "install"])
    assert result.exit_code == 1 and "Error: `systemctl --user daemon-reload` failed" in result.output


def test_cli_install_stops_a_hand_started_daemon_first(
    fake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons cannot share a data home: the hand-started one must give way to the unit's."""
    if not sys.platform.startswith("linux"):
        pytest.skip("exercises the systemd path")
    from isearchd.service import control

    for key, value in fake_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    stopped: list[int] = []
    monkeypatch.setattr(control, "managed_by_init", lambda: False)
    monkeypatch.setattr(control, "running_pid", lambda: 4242)
    monkeypatch.setattr(control, "stop", lambda **_: stopped.append(4242) or 4242)
    app = typer.Typer()
    service_app = typer.Typer()
    app.add_typer(service_app, name="service")
    register(service_app)

    result = CliRunner().invoke(app, ["service", "install", "-m", "ViT-8Y"])
    assert result.exit_code == 0, result.output
    assert stopped == [4242]
    assert "Stopped the service started by hand (PID 4242)" in result.output
    assert result.output.index("Stopped") < result.output.index("$ systemctl --user enable")


# -- readiness ---------------------------------------------------------------------------------------


def test_readiness_waits_for_a_listening_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    assert tcp_address(path) is None and tcp_address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert not is_listening(path)
    with pytest.raises(ServiceNotRunning, match="did not listen"):
        wait_until_listening(path, timeout=0.3, interval=0.05)

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:

        def listen() -> None:
            server.bind(path)
            server.listen(1)

        timer = threading.Timer(0.2, listen)
        timer.start()
        wait_until_listening(path, timeout=10, interval=0.05)
        timer.join()
        assert is_listening(path)
    finally:
        server.close()


def test_readiness_gives_up_when_the_daemon_exits(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(ServiceError, match=f"pid {child.pid}\\) exited"):
        wait_until_listening(str(tmp_path / "s.sock"), timeout=30, pid=child.pid, interval=0.05)


def test_status_of_a_stopped_installed_service_says_what_the_init_system_says(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").touch()  # a reachable systemd user manager
    env = {**fake_env, "XDG_RUNTIME_DIR": str(runtime)}
    sock = str(tmp_path / "nobody-listens.sock")

    def status() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "isearchd.cli", "service", "status", "-B", sock]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    before = status()
    assert before.returncode == 3 and "is not running" in before.stdout
    assert "Installed user service" not in before.stdout  # none installed: nothing to ask

    service.install(platform="linux", user_home=Path(env["HOME"]), environ=env)
    calls(env)
    after = status()
    assert after.returncode == 3, after.stderr
    assert "* Installed user service: active (running), PID 4242" in after.stdout
    assert calls(env) == ["systemctl --user show isearchd.service --property=ActiveState,SubState,MainPID"]
