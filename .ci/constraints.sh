#!/usr/bin/env bash
# Resolve the newest versions pyproject.toml allows, in a fresh venv, and write them
# as constraints-3.11.txt (Airflow's convention: `pip install -c constraints-3.11.txt`).
# `make constraints` runs this; commit the file once `make test` passes with it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet '.[airflow,team,dev,bench]'
version="$("$work/venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
{
  echo "# The versions gonogo is tested with, for Python $version: pip install -c constraints-$version.txt"
  echo "# Made by \`make constraints\` from pyproject.toml's ranges; refresh it there, not by hand."
  "$work/venv/bin/pip" freeze --exclude gonogo --exclude pip --exclude setuptools --exclude wheel | LC_ALL=C sort -f
} > "constraints-$version.txt"
echo "wrote constraints-$version.txt"
