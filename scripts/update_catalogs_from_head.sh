#!/usr/bin/env bash
# Refresh the catalogs from the committed code only (not from uncommitted work in the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(mktemp -d)
git archive HEAD bot conversations pyproject.toml | tar -x -C "$src"
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
(cd "$src" && "$OLDPWD/$PYBABEL" -q extract -F pyproject.toml --no-location --sort-output \
    -c TRANSLATORS: -o "$OLDPWD/locales/messages.pot" bot conversations)
"$PYBABEL" -q update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete
rm -rf "$src"
