#!/usr/bin/env bash
# ImgSearch end to end, on a fresh machine: create .venv and install the project (once), start a
# daemon on a temporary data home, index bundled sample images (synthetic coloured shapes), run a
# text search and an image search, compare two images, stop the daemon, remove the temporary home.
#
# Model: the real ViT-45LY weights when they are in the weights cache (`isearch model pull
# ViT-45LY`), else the bundled test model tests/fixtures/tiny-clip.pt (trained on the same kind of
# synthetic shapes; no network needed), and the script says which one it uses.
#
# Environment:
#   ISEARCH_DEMO_SKIP_VENV=1   use the python3 on PATH (an activated venv with the project
#                              installed) instead of creating/using ./.venv
#   ISEARCH_DEMO_MODEL=KEY|PATH force a model
#   ISEARCH_DEMO_KEEP=1        keep the temporary home (printed at the end)
#   ISEARCH_DEMO_UI=1          open the web page (isearch ui) and wait for Enter before stopping
# Safe to run again: an existing .venv with the project installed is reused as it is.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '\n==> %s\n' "$*"; }

if [[ "${ISEARCH_DEMO_SKIP_VENV:-0}" == "1" ]]; then
    py="$(command -v python3 || command -v python)"
    say "Using the current Python environment: $py"
else
    if [[ ! -x .venv/bin/python ]]; then
        say "Creating the virtual environment .venv"
        python3 -m venv .venv
    fi
    py="$repo/.venv/bin/python"
    # installed = the project's metadata is there and its heavy dependencies import
    if ! "$py" -c 'import importlib.metadata as m, hnswlib, open_clip, typer; m.version("isearchd")' \
        >/dev/null 2>&1; then
        say "Installing ImgSearch and its dependencies into .venv (pip install -e .)"
        "$py" -m pip install --quiet --upgrade pip
        "$py" -m pip install --quiet -e .
    fi
    say "Using the virtual environment .venv ($py)"
fi
"$py" -c 'import isearchd.cli' || { echo "demo: the isearchd package is not importable with $py" >&2; exit 1; }

# Show every command as `$ isearch ...` and run it with the chosen interpreter.
isearch() {
    local arg line='$ isearch'
    for arg in "$@"; do
        if [[ "$arg" =~ [[:space:]] ]]; then line+=" \"$arg\""; else line+=" $arg"; fi
    done
    printf '\n%s\n' "$line"
    "$py" -m isearchd.cli "$@"
}

demo_root="$(mktemp -d "${TMPDIR:-/tmp}/isearch-demo.XXXXXX")"
export ISEARCH_HOME="$demo_root/home"
export ISEARCH_CONFIG="$demo_root/isearch.toml"   # no user config: defaults only
started=0
cleanup() {
    local rc=$?
    if [[ "$started" == 1 ]]; then
        "$py" -m isearchd.cli service stop >/dev/null 2>&1 || true
    fi
    if [[ "${ISEARCH_DEMO_KEEP:-0}" == "1" ]]; then
        echo "demo: kept $demo_root"
    else
        rm -rf "$demo_root"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Temporary data home: $ISEARCH_HOME"

say "Writing sample images (6 colours x 5 shapes, 2 of each) to $demo_root/images"
"$py" - "$demo_root" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "tests/fixtures")
from shapes import write_samples

root = Path(sys.argv[1])
written = write_samples(root / "images", n_per_class=2)
# query images: other renderings (another seed) of the same classes, not in the index
write_samples(root / "queries", n_per_class=1, seed=20_000, classes=[("blue", "square"), ("red", "circle")])
print(f"wrote {len(written)} images")
PY

if [[ -n "${ISEARCH_DEMO_MODEL:-}" ]]; then
    model="$ISEARCH_DEMO_MODEL"
    say "Model: $model (ISEARCH_DEMO_MODEL)"
elif "$py" -c 'import sys; from isearchd.models.weights import is_cached; sys.exit(0 if is_cached("ViT-45LY") else 1)'; then
    model="ViT-45LY"
    say "Model: ViT-45LY (real TinyCLIP weights found in the cache)"
else
    model="tests/fixtures/tiny-clip.pt"
    say "Model: the bundled TEST model $model - the ViT-45LY weights are not cached" \
        "(no network here?). Results show the whole pipeline on synthetic shapes, not real-photo quality;" \
        "run \`isearch model pull ViT-45LY\` (or \`isearch model import ViT-45LY FILE\`) to use the real model."
fi

started=1
isearch service start -m "$model"
isearch service status
isearch add "$demo_root/images"
isearch -n 5 "a red circle"
isearch search -n 5 "$demo_root/queries/blue_square_0.jpg"
isearch cmp "$demo_root/queries/red_circle_0.jpg" "$demo_root/images/red_circle_0.jpg"
isearch db --info
# the web page: port 0 lets the daemon pick a free one (ISEARCH_DEMO_UI=1 opens it and waits)
if [[ "${ISEARCH_DEMO_UI:-0}" == "1" ]]; then
    isearch ui --listen 127.0.0.1:8765
    read -r -p "The web page is open in your browser; press Enter to stop the demo. " _
else
    isearch ui --no-browser --listen 127.0.0.1:0
fi
isearch service stop
started=0
say "Demo finished"
