#!/usr/bin/env bash
# Create a separate virtual environment with Prefect 1.4.1 for the side-by-side benchmarks,
# then print its python path (pass it to `python -m benchmarks --prefect-python PATH`).
#
#   benchmarks/make_prefect_venv.sh [VENV_DIR]      (default: benchmarks/.prefect1-venv)
#
# Environment: PYTHON (interpreter used to create the venv, default python3).
# The venv directory is git-ignored. Prefect 1.4.1 pulls in its own dask/distributed; the
# benchmark only needs the interpreter to import `prefect` and the standard library.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.prefect1-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet "prefect==1.4.1" >&2
"$venv/bin/python" -c "import prefect; assert prefect.__version__ == '1.4.1', prefect.__version__" >&2
echo "$venv/bin/python"
