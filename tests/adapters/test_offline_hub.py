"""Issue #13, item 13: a hub id that cannot be reached says the network is the cause (not a
missing file) and how to pass a local folder instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_an_unreachable_hub_is_named_as_the_cause_with_the_local_folder_fix() -> None:
    # HF_HUB_OFFLINE makes huggingface_hub fail at once the way a machine without network does
    # after its retries: a connection error under "file not found in the cache".
    code = (
        "from fifo_core.api import load_backbone\n"
        "from fifo_core.errors import ConfigError\n"
        "try:\n"
        "    load_backbone('zeroscope', {'model': 'someorg/somemodel'})\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=110,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    message = result.stdout
    assert "network" in message and "someorg/somemodel" in message, message + result.stderr
    assert "does not appear to have a file" not in message
    assert "--model FOLDER" in message or "model=FOLDER" in message
