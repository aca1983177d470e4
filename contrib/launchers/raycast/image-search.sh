#!/bin/bash

# Required parameters:
# @raycast.schemaVersion 1
# @raycast.title Image Search
# @raycast.mode fullOutput
# @raycast.packageName ImgSearch

# Optional parameters:
# @raycast.icon 🔎
# @raycast.argument1 { "type": "text", "placeholder": "what the image shows" }
# @raycast.argument2 { "type": "text", "placeholder": "open result # (default 1)", "optional": true }

# Documentation:
# @raycast.description Find images with the ImgSearch daemon; opens the chosen match and lists the others.
# @raycast.author ImgSearch

# Searches with `isearch search --json`, prints the matches numbered, and opens match number
# argument2 (default 1) with `open`. ISEARCH_BIN overrides the isearch command; ISEARCH_OPENER
# the opener (tests); ISEARCH_COUNT the number of matches (default 10).
set -euo pipefail
export PATH="$PATH:$HOME/.local/bin:/opt/homebrew/bin:/usr/local/bin"

query="$1"
pick="${2:-1}"
isearch="${ISEARCH_BIN:-isearch}"
opener="${ISEARCH_OPENER:-open}"
python="${ISEARCH_PYTHON:-python3}"

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
if ! json="$("$isearch" search --json -n "${ISEARCH_COUNT:-10}" "$query" 2>"$errors")"; then
    echo "ImgSearch error: $(tail -n 1 "$errors")"
    exit 1
fi

# The JSON schema: {"query", "kind", "db", "results": [{"path", "label", "similarity", "taken", ...}]}
# (contrib/launchers/search-result.schema.json); the listing shows the date taken when known. A path
# whose name is not UTF-8 arrives with \udcXX escapes: Python hands the opener its exact bytes,
# and the listing shows such names escaped, one line each.
printf '%s' "$json" | "$python" -c '
import json, subprocess, sys
pick, opener = sys.argv[1], sys.argv[2]
results = json.load(sys.stdin)["results"]
def shown(text):
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode() for c in text)
def day(r):
    taken = r.get("taken")
    return taken[:10] if isinstance(taken, str) and len(taken) >= 10 else ""
dated = any(day(r) for r in results)
for i, r in enumerate(results, 1):
    date = "%-10s  " % day(r) if dated else ""
    print("%2d. %5.1f%%  %s%s" % (i, r["similarity"], date, shown(r["path"])))
if not results:
    print("No matching images")
elif pick.isdigit() and 1 <= int(pick) <= len(results):
    sys.stdout.flush()
    subprocess.run([opener, results[int(pick) - 1]["path"]], check=False)
' "$pick" "$opener"
