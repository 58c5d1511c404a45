"""Shared pytest fixtures and settings.

Every test runs offline: a test that tries to reach a model hub fails.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
