"""How the CLI shows outcomes: exit statuses, the one red error line, progress, counted words.

Every command prints through these so that a failure always looks the same (one red ``Error:``
line on stderr) and a long download or add always shows its progress the same way.
"""

from __future__ import annotations

import sys
import time

import typer

from isearchd.files.names import printable

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
# Progress redraw limits: a terminal bar at most 10 times a second, plain lines once a second.
BAR_REFRESH_S = 0.1
LINE_REFRESH_S = 1.0
BAR_WIDTH = 28


def fail(message: str) -> None:
    """The one red line every failure prints."""
    line = " ".join(printable(message).split())
    typer.secho(f"Error: {line}", err=True, fg=typer.colors.RED)


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


class Progress:
    """A progress display: a redrawn bar with rate and ETA on a terminal, plain lines otherwise."""

    def __init__(self, what: str, unit: str, *, scale: float = 1.0, fmt: str = "{:.0f}") -> None:
        self.what = what
        self.unit = unit
        self.scale = scale
        self.fmt = fmt
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False
        self.last: tuple[float, float | None] = (0.0, None)

    def update(self, done: float, total: float | None) -> None:
        self.last = (done, total)
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.last_draw < (BAR_REFRESH_S if self.tty else LINE_REFRESH_S) and not finished:
            return
        self.last_draw = now
        self._draw(done, total, now)

    def _draw(self, done: float, total: float | None, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = done / self.scale / elapsed
        shown = self.fmt.format(done / self.scale)
        if total:
            frac = min(done / total, 1.0)
            eta = (total - done) / self.scale / rate if rate > 0 else None
            count = f"{shown}/{self.fmt.format(total / self.scale)} {self.unit}"
            eta_text = f"ETA {_clock(eta)}" if eta is not None else "ETA --:--"
        else:
            frac = None
            count = f"{shown} {self.unit}"
            eta_text = ""
        rate_text = f"{rate:.1f} {self.unit}/s"
        if self.tty:
            filled = int(BAR_WIDTH * frac) if frac is not None else 0
            bar = "#" * filled + "-" * (BAR_WIDTH - filled) if frac is not None else ""
            line = f"{self.what} [{bar}] {count}  {rate_text}  {eta_text}".rstrip()
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
            self.drawn = True
        else:
            typer.echo(f"{self.what}: {count} ({rate_text}{', ' + eta_text if eta_text else ''})", err=True)

    def close(self) -> None:
        if self.tty and self.drawn:
            done, total = self.last
            self._draw(done, total, time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
