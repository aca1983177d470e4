#!/usr/bin/env python3
"""Alfred script filter: `img beach sunset` lists matching images, Enter opens one.

Prints Alfred's script-filter JSON ({"items": [...]}) built from `isearch search --json`.
Each image is its own icon (Alfred renders image files as thumbnails); Shift or Cmd-Y shows a
Quick Look preview. Workflow variables: isearch_bin (default "isearch"), isearch_db, isearch_count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Alfred runs scripts with a minimal PATH; add the places pip, pipx and Homebrew install to.
EXTRA_PATH = ("~/.local/bin", "/opt/homebrew/bin", "/usr/local/bin")


def alfred_items(data: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError("unexpected JSON from isearch (no results list)")
    items = []
    for result in data["results"]:
        path = str(result["path"])
        name, folder = Path(path).name or path, str(Path(path).parent)
        taken = result.get("taken")
        date = f"{taken[:10]}  " if isinstance(taken, str) and len(taken) >= 10 else ""
        items.append(
            {
                "uid": path,
                "type": "file",
                "title": name,
                "subtitle": f"{float(result['similarity']):.1f}%  {date}{folder}",
                "arg": path,
                "icon": {"path": path},
                "quicklookurl": path,
            }
        )
    return {"items": items}


def message(title: str, subtitle: str) -> dict[str, list[dict[str, Any]]]:
    return {"items": [{"title": title, "subtitle": subtitle, "valid": False}]}


def run(query: str, environ: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    if not query.strip():
        return message("Type what the image shows", "e.g. beach sunset, red car")
    env = dict(environ)
    env["PATH"] = os.pathsep.join(
        [env.get("PATH", "/usr/bin:/bin"), *(str(Path(p).expanduser()) for p in EXTRA_PATH)]
    )
    argv = [env.get("isearch_bin") or "isearch", "search", "--json", "-n", env.get("isearch_count") or "20"]
    if env.get("isearch_db"):
        argv += ["-d", env["isearch_db"]]
    argv.append(query.strip())
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    except FileNotFoundError:
        return message("isearch not found", "set the workflow variable isearch_bin to its full path")
    except subprocess.TimeoutExpired:
        return message("ImgSearch did not answer", "is the daemon running? isearch service status")
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return message("ImgSearch error", lines[-1] if lines else f"exit {proc.returncode}")
    try:
        out = alfred_items(json.loads(proc.stdout))
    except (ValueError, KeyError, TypeError) as err:
        return message("ImgSearch error", str(err))
    return out if out["items"] else message("No matching images", query)


if __name__ == "__main__":
    json.dump(run(" ".join(sys.argv[1:]), dict(os.environ)), sys.stdout)
    sys.stdout.write("\n")
