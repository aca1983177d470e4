"""Sphinx configuration of ImgSearch's documentation (Markdown pages, read by MyST).

Built strictly by .ci/run: ``sphinx-build -W --keep-going -n -b html docs docs/_build/html``, so a
broken link between pages, a missing anchor or a page left out of the table of contents fails CI.
"""

project = "ImgSearch"
author = "the ImgSearch authors"
copyright = "2026, the ImgSearch authors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# "page.md#a-heading" links: anchors for headings down to ###, checked like page links
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = "ImgSearch"
html_static_path: list[str] = []
