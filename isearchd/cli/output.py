"""How the CLI shows outcomes: exit statuses, the one red error line, progress, counted words.

Every command prints through these so that a failure always looks the same (one red ``Error:``
line on stderr) and a long download or add always shows its progress the same way.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from isearchd.files.names import printable

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

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


def confirm(question: str, refusal: Exception) -> bool:
    """Ask ``question``; whether the answer was yes. An answer on a pipe counts (`echo y | isearch
    db --clear`), as in the original; no answer at all (end of input, /dev/null) raises
    ``refusal``, which points at -y."""
    if sys.stdin.isatty():
        try:
            return bool(typer.confirm(question))
        except typer.Abort:  # end of input (Ctrl-D) or Ctrl-C
            typer.echo()
            raise refusal from None
    typer.echo(f"{question} [y/N]: ", nl=False)
    answer = sys.stdin.readline()
    typer.echo(answer.strip())  # the terminal would have echoed it
    if not answer:
        raise refusal
    return answer.strip().lower() in ("y", "yes")


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


class ProgressBar:
    """A progress display. On a terminal: a rich bar with the count, the rate and the ETA, redrawn
    as it goes. Otherwise (a pipe, a log file): plain lines at most once a second, which read well
    in a log, where redraws would not."""

    def __init__(self, what: str, unit: str, *, scale: float = 1.0, fmt: str = "{:.0f}") -> None:
        self.what = what
        self.unit = unit
        self.scale = scale
        self.fmt = fmt
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.last: tuple[float, float | None] = (0.0, None)
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def update(self, done: float, total: float | None) -> None:
        self.last = (done, total)
        now = time.monotonic()
        if self.tty:
            self._show_bar(done, total, now)  # rich limits the redraws itself
            return
        finished = total is not None and done >= total
        if now - self.last_draw < LINE_REFRESH_S and not finished:
            return
        self.last_draw = now
        count, rate, eta = self._figures(done, total, now)
        typer.echo(f"{self.what}: {count} ({rate}{', ' + eta if eta else ''})", err=True)

    def _figures(self, done: float, total: float | None, now: float) -> tuple[str, str, str]:
        """The count ("45/90 images"), the rate ("12.3 images/s") and the ETA ("" without a total)."""
        elapsed = max(now - self.started, 1e-6)
        rate = done / self.scale / elapsed
        shown = self.fmt.format(done / self.scale)
        if total:
            eta = (total - done) / self.scale / rate if rate > 0 else None
            count = f"{shown}/{self.fmt.format(total / self.scale)} {self.unit}"
            eta_text = f"ETA {_clock(eta)}" if eta is not None else "ETA --:--"
        else:
            count = f"{shown} {self.unit}"
            eta_text = ""
        return count, f"{rate:.1f} {self.unit}/s", eta_text

    def _show_bar(self, done: float, total: float | None, now: float) -> None:
        figures = "  ".join(text for text in self._figures(done, total, now) if text)
        if self._bar is None or self._task is None:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}", markup=False),
                BarColumn(bar_width=BAR_WIDTH),  # without a total: a pulsing bar
                TextColumn("{task.fields[figures]}", markup=False),
                console=Console(stderr=True),
                refresh_per_second=1 / BAR_REFRESH_S,
            )
            self._task = self._bar.add_task(self.what, total=total or None, figures=figures)
            self._bar.start()
        # total=None would mean "unchanged" to rich, which is what an unknown total needs anyway
        self._bar.update(self._task, completed=done, total=total or None, figures=figures)

    def close(self) -> None:
        """Finish the display: the bar is drawn once more, with the final figures, and left."""
        if self._bar is not None:
            done, total = self.last
            self._show_bar(done, total, time.monotonic())
            self._bar.stop()
            self._bar = None


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
