#!/usr/bin/env python3
"""SpeechBrain's yaml-vs-script check on every recipe YAML of this project.

SpeechBrain's ``tests/utils/check_yaml.py`` (``check_yaml_vs_script``)
fails a recipe whose YAML declares a key that its script never reads. Our
recipes' ``train.py`` is thin: the stages shared by the IEMOCAP and MELD
recipes live in the package, whose ``HPARAM_READERS`` read the hparams. So
the check is run on the script as the recipe runs it: the row's
``Script_file`` (``tests/recipes/<Dataset>.csv``) followed by those modules,
written as one temporary file.

SpeechBrain's check is not part of its installed package; give its file
(from a SpeechBrain checkout, ``tests/utils/check_yaml.py``)::

    python tools/check_yaml.py /path/to/speechbrain/tests/utils/check_yaml.py

It prints SpeechBrain's report per YAML and exits with 1 if any YAML fails.
``tests/test_recipes.py`` runs it where ``SPEECHBRAIN_CHECK_YAML`` names the
file, and checks the same in both directions without it.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import importlib.util
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
#: The package's modules that read a recipe's hparams (besides train.py).
HPARAM_READERS = [
    REPO / "speechbrain_dpm" / name
    for name in ("recipe.py", "brain.py", "evaluation.py", "dpm_training.py")
]


def recipe_rows():
    """``(Hparam_file, Script_file)`` of every row of
    ``tests/recipes/*.csv``, relative to the repository."""
    rows = []
    for path in sorted((REPO / "tests" / "recipes").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fin:
            for row in csv.DictReader(fin, skipinitialspace=True):
                rows.append((row["Hparam_file"], row["Script_file"]))
    return rows


def load_check(path):
    """SpeechBrain's ``check_yaml`` module, loaded from its file."""
    spec = importlib.util.spec_from_file_location("sb_check_yaml", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check(check_yaml_file):
    """Runs ``check_yaml_vs_script`` on every recipe row.

    Arguments
    ---------
    check_yaml_file : str or path-like
        SpeechBrain's ``tests/utils/check_yaml.py``.

    Returns
    -------
    list of str
        The YAMLs that fail (empty: all pass).
    """
    check = load_check(check_yaml_file)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for hparam_file, script_file in recipe_rows():
            sources = [REPO / script_file, *HPARAM_READERS]
            script = pathlib.Path(tmp) / "recipe_as_run.py"
            script.write_text(
                "\n".join(p.read_text(encoding="utf-8") for p in sources),
                encoding="utf-8",
            )
            if not check.check_yaml_vs_script(str(REPO / hparam_file), script):
                failed.append(hparam_file)
    return failed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    failed = run_check(sys.argv[1])
    print(f"failed: {failed}" if failed else "every recipe YAML passes")
    sys.exit(1 if failed else 0)
