"""The machine a benchmark ran on, for its table and JSON: the CPU's model name as ``lscpu``
gives it (every figure is named with its machine: ours differ from session to session)."""

from __future__ import annotations

import platform
import re
import subprocess


def cpu_model() -> str:
    """``lscpu``'s model name, else what ``platform`` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    found = re.search(r"Model name:\s*(.+)", out)
    return found.group(1).strip() if found else platform.processor()
