"""The re-preparation signature: whether a preparation can be reused.

Idempotency
-----------
A prepare script stores its options and a hash of the corpus file list
(relative path, size and modification time of every input file) in
``prepare_opts.json`` next to the manifests. A later call skips the work only
when that signature matches and every manifest (and every wav it points to)
exists; otherwise it prepares again.

Authors
 * speechbrain_dpm contributors 2026
"""

import hashlib
import json
import os

from speechbrain.utils.logger import get_logger

from speechbrain_dpm.dataprep.manifests import SPLITS, write_manifest

logger = get_logger(__name__)

SIGNATURE_FILE = "prepare_opts.json"


def corpus_hash(paths, root=None):
    """Hashes a list of files by relative path, size and modification time.

    Missing files are hashed as missing, so creating, deleting, replacing
    or touching any listed file changes the hash.

    Arguments
    ---------
    paths : iterable of str
        The input files of a preparation.
    root : str or None
        Paths are hashed relative to this folder (so that a moved corpus
        hashes the same); ``None`` uses them as given.

    Returns
    -------
    str
        A hex SHA-256 digest.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> p = tmp / "a.txt"
    >>> _ = p.write("x")
    >>> h1 = corpus_hash([str(p)], root=str(tmp))
    >>> _ = p.write("xy")
    >>> h1 == corpus_hash([str(p)], root=str(tmp))
    False
    """
    digest = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        rel = os.path.relpath(path, root) if root else path
        try:
            st = os.stat(path)
            item = f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n"
        except OSError:
            item = f"{rel}\tmissing\n"
        digest.update(item.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _manifest_paths(save_folder, splits=SPLITS):
    return [os.path.join(save_folder, f"{s}.json") for s in splits]


def prep_is_current(save_folder, options, corpus_digest, splits=SPLITS):
    """Tells whether an earlier preparation can be reused.

    True only if ``prepare_opts.json`` in ``save_folder`` holds exactly these
    options and corpus hash, every manifest exists and parses, and every wav
    file the manifests point to exists.

    Arguments
    ---------
    save_folder : str
        Where the manifests and ``prepare_opts.json`` are.
    options : dict
        The (JSON-serialisable) options of the preparation.
    corpus_digest : str
        The :func:`corpus_hash` of the inputs.
    splits : tuple of str
        Manifest names without ``.json``.

    Returns
    -------
    dict or None
        The stored signature (with its ``summary``) if the preparation is
        current, else None.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> prep_is_current(tmp, {"a": 1}, "abc") is None
    True
    >>> for s in SPLITS:
    ...     write_manifest({}, os.path.join(tmp, s + ".json"))
    >>> save_prep_signature(tmp, {"a": 1}, "abc", {"splits": {}})
    >>> prep_is_current(tmp, {"a": 1}, "abc")["options"]
    {'a': 1}
    >>> prep_is_current(tmp, {"a": 2}, "abc") is None
    True
    """
    sig_path = os.path.join(save_folder, SIGNATURE_FILE)
    try:
        with open(sig_path, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None
    # Round trip through JSON so tuples compare equal to lists.
    wanted = json.loads(json.dumps(options))
    if stored.get("options") != wanted:
        logger.info(f"{sig_path}: options changed, preparing again")
        return None
    if stored.get("corpus_hash") != corpus_digest:
        logger.info(f"{sig_path}: corpus changed, preparing again")
        return None
    for path in _manifest_paths(save_folder, splits):
        try:
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError):
            logger.info(f"{path} missing or unreadable, preparing again")
            return None
        for entry in entries.values():
            if not os.path.isfile(entry.get("wav", "")):
                logger.info(
                    f"{path}: {entry.get('wav')} is gone, preparing again"
                )
                return None
    return stored


def save_prep_signature(save_folder, options, corpus_digest, summary):
    """Stores the options, corpus hash and summary of a preparation.

    Call it after all manifests are written: an interrupted preparation then
    leaves no valid signature and runs again next time.

    Arguments
    ---------
    save_folder : str
        Where the manifests are.
    options : dict
        The (JSON-serialisable) options of the preparation.
    corpus_digest : str
        The :func:`corpus_hash` of the inputs.
    summary : dict
        The preparation summary (returned again on reuse).

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> save_prep_signature(tmp, {"n_classes": 4}, "abc", {})
    >>> os.path.isfile(os.path.join(tmp, SIGNATURE_FILE))
    True
    """
    write_manifest(
        {
            "options": options,
            "corpus_hash": corpus_digest,
            "summary": summary,
        },
        os.path.join(save_folder, SIGNATURE_FILE),
    )


def clear_prep_signature(save_folder):
    """Removes ``prepare_opts.json`` before a preparation rewrites files.

    Arguments
    ---------
    save_folder : str
        Where the manifests are.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> save_prep_signature(tmp, {}, "abc", {})
    >>> clear_prep_signature(tmp)
    >>> os.path.exists(os.path.join(tmp, SIGNATURE_FILE))
    False
    """
    try:
        os.remove(os.path.join(save_folder, SIGNATURE_FILE))
    except FileNotFoundError:
        pass
