"""Make the installed torchaudio importable beside a CPU-only torch.

PyPI's torchaudio wheels for x86-64 Linux are CUDA builds: their compiled
extension links ``libc10_cuda.so`` and fails to load beside a ``+cpu`` torch.
The pure-Python parts that SpeechBrain and this project use (resampling,
feature transforms) do not need that extension, so when the import fails for
exactly that reason we move the compiled libraries aside (kept, renamed) and
check again. Any other failure is reported as it is.
"""

import importlib.util
import pathlib
import subprocess
import sys


def _import_error():
    """Return the error text of ``import torchaudio`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", "import torchaudio"],
        capture_output=True,
        text=True,
    )
    return None if proc.returncode == 0 else proc.stderr


def main():
    """Check the import and disable the CUDA-only extension if needed."""
    err = _import_error()
    if err is None:
        print("[setup] torchaudio imports fine")
        return 0
    if "libc10_cuda" not in err and "libcudart" not in err:
        print(err, file=sys.stderr)
        return 1
    spec = importlib.util.find_spec("torchaudio")
    libdir = pathlib.Path(spec.origin).parent / "lib"
    for so in libdir.glob("*.so"):
        so.rename(so.with_suffix(".so.cuda-disabled"))
    err = _import_error()
    if err is not None:
        print(err, file=sys.stderr)
        return 1
    print(
        "[setup] torchaudio: CUDA-only extension disabled "
        "(resampling and transforms work; forced_align does not)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
