"""The cache of built assets: one folder per key, built once.

Builds are idempotent (a complete folder holds a marker file), atomic (built
in a temporary folder beside the target, then renamed) and serialized across
processes by a file lock, so several DDP ranks may call
:func:`resolve_model` at once.

Authors
 * speechbrain_dpm contributors 2026
"""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_dpm.assets import registry
from speechbrain_dpm.assets.packages import AssetError

logger = get_logger(__name__)

# Bump when the content of built folders changes: older folders get rebuilt.
_FORMAT_VERSION = 1
_MARKER = "speechbrain_dpm_asset.json"


def cache_dir():
    """Returns the folder that holds the built assets.

    It is ``$SPEECHBRAIN_DPM_CACHE`` when set, else
    ``~/.cache/speechbrain_dpm``. The folder is not created here.

    Returns
    -------
    pathlib.Path
        The (absolute) cache folder.

    Example
    -------
    >>> cache_dir().is_absolute()
    True
    """
    env = os.environ.get("SPEECHBRAIN_DPM_CACHE")
    root = Path(env) if env else Path("~/.cache/speechbrain_dpm")
    return root.expanduser().absolute()


def _is_complete(folder):
    """Whether ``folder`` holds a finished build of the current format."""
    marker = Path(folder) / _MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("format_version") == _FORMAT_VERSION


def _tmp_prefix(key):
    """Name prefix of the temporary build folders of ``key``."""
    return f".{key}.tmp-"


def build(key, force=False):
    """Builds the asset ``key`` into the cache (once) and returns its folder.

    A finished folder holds a marker file, so later calls return at once.
    The build happens in a temporary folder beside the target, which is
    renamed when complete; a file lock keeps concurrent processes (e.g.
    DDP ranks) from building the same asset twice, and temporary folders
    left by a killed build are removed.

    Arguments
    ---------
    key : str
        One of :data:`KNOWN_ASSETS`.
    force : bool
        Rebuild even if a finished folder exists.

    Returns
    -------
    pathlib.Path
        The absolute folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> folder = build("whisper-tiny.en")
    >>> (folder / "model.safetensors").exists()
    True
    """
    if key not in registry.BUILDERS:
        known = ", ".join(registry.KNOWN_ASSETS)
        raise AssetError(f"Unknown asset '{key}'; known assets: {known}")
    root = cache_dir()
    target = root / key
    if not force and _is_complete(target):
        return target

    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock")):
        # Another process may have finished while we waited for the lock.
        if not force and _is_complete(target):
            return target
        # Holding the lock means no build is running: leftovers are stale.
        for stale in root.glob(_tmp_prefix(key) + "*"):
            logger.info("Removing stale temporary folder %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f"{_tmp_prefix(key)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        logger.info("Building asset '%s' into %s", key, target)
        start = time.time()
        try:
            info = registry.BUILDERS[key](tmp)
            info.pop("model", None)
            info.update(
                key=key,
                format_version=_FORMAT_VERSION,
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            # The marker is written last: its presence means complete.
            (tmp / _MARKER).write_text(json.dumps(info, indent=2))
            if target.exists():
                # Move the old folder aside first: a folder cannot be
                # replaced by a rename onto a non-empty folder.
                old = root / f"{_tmp_prefix(key)}old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("Built '%s' in %.1f s", key, time.time() - start)
    return target


def resolve_model(name_or_path):
    """Turns a model name into something ``from_pretrained`` can load.

    Arguments
    ---------
    name_or_path : str
        A key of :data:`KNOWN_ASSETS` (built on first use), a local folder,
        or anything else (passed through unchanged, e.g. a hub id).

    Returns
    -------
    str
        The built folder for a known key, the absolute path of an existing
        folder, otherwise ``name_or_path`` itself.

    Example
    -------
    >>> resolve_model("openai/whisper-small")
    'openai/whisper-small'
    >>> import os
    >>> os.path.isabs(resolve_model(str(getfixture("tmpdir"))))
    True
    """
    name = str(name_or_path)
    if name in registry.KNOWN_ASSETS:
        return str(build(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.absolute())
    return name
