"""Ulauncher extension: `img beach sunset` lists matching images; Enter opens one.

It runs `isearch search --json` (the ImgSearch daemon must be running) and shows each result
with its thumbnail as the icon. The pure functions at the top (the command line, JSON -> items)
are tested without Ulauncher; the Ulauncher classes are built only when Ulauncher runs this file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ICON = "images/icon.svg"
SEARCH_TIMEOUT_S = 30


def build_command(query: str, isearch_bin: str = "isearch", database: str = "", count: int = 8) -> list[str]:
    argv = [isearch_bin or "isearch", "search", "--json", "-n", str(count)]
    if database:
        argv += ["-d", database]
    return [*argv, query]


def results_to_items(data: Any, limit: int | None = None) -> list[dict[str, str]]:
    """Map `isearch --json` output to rows: name, description (similarity, the date taken when
    known, folder), icon (the image), path."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError("unexpected JSON from isearch (no results list)")
    items = []
    for result in data["results"][:limit]:
        path = str(result["path"])
        taken = result.get("taken")
        date = f"{taken[:10]}  " if isinstance(taken, str) and len(taken) >= 10 else ""
        items.append(
            {
                "name": Path(path).name or path,
                "description": f"{float(result['similarity']):.1f}%  {date}{Path(path).parent}",
                "icon": path,
                "path": path,
            }
        )
    return items


def message_item(title: str, detail: str) -> dict[str, str]:
    return {"name": title, "description": detail, "icon": ICON, "path": ""}


def search_items(query: str, isearch_bin: str, database: str, count: int) -> list[dict[str, str]]:
    """Run the search; errors become one explanatory row instead of an empty list."""
    if not query.strip():
        return [message_item("Type what the image shows", "e.g. beach sunset, red car, cat on a sofa")]
    argv = build_command(query.strip(), isearch_bin, database, count)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=SEARCH_TIMEOUT_S)
    except FileNotFoundError:
        return [message_item("isearch not found", f"set the isearch command in the preferences ({argv[0]})")]
    except subprocess.TimeoutExpired:
        return [message_item("ImgSearch did not answer", f"no reply within {SEARCH_TIMEOUT_S} s")]
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return [message_item("ImgSearch error", lines[-1] if lines else f"exit {proc.returncode}")]
    try:
        items = results_to_items(json.loads(proc.stdout), count)
    except (ValueError, KeyError, TypeError) as err:
        return [message_item("ImgSearch error", str(err))]
    return items or [message_item("No matching images", query)]


def main() -> None:  # pragma: no cover - needs Ulauncher
    from ulauncher.api.client.EventListener import EventListener
    from ulauncher.api.client.Extension import Extension
    from ulauncher.api.shared.action.DoNothingAction import DoNothingAction
    from ulauncher.api.shared.action.OpenAction import OpenAction
    from ulauncher.api.shared.action.RenderResultListAction import RenderResultListAction
    from ulauncher.api.shared.event import KeywordQueryEvent
    from ulauncher.api.shared.item.ExtensionResultItem import ExtensionResultItem

    class QueryListener(EventListener):
        def on_event(self, event: Any, extension: Any) -> Any:
            prefs = extension.preferences
            try:
                count = max(1, int(prefs.get("count") or 8))
            except ValueError:
                count = 8
            rows = search_items(
                event.get_argument() or "",
                prefs.get("isearch_bin") or "isearch",
                prefs.get("database") or "",
                count,
            )
            return RenderResultListAction(
                [
                    ExtensionResultItem(
                        icon=row["icon"],
                        name=row["name"],
                        description=row["description"],
                        on_enter=OpenAction(row["path"]) if row["path"] else DoNothingAction(),
                    )
                    for row in rows
                ]
            )

    class ImageSearchExtension(Extension):
        def __init__(self) -> None:
            super().__init__()
            self.subscribe(KeywordQueryEvent, QueryListener())

    ImageSearchExtension().run()


if __name__ == "__main__":
    main()
