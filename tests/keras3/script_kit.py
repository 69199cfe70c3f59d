"""Runs one of this folder's backend scripts in a fresh process and returns its ``RESULT`` line.

A Keras backend (and TensorFlow's logical devices) is fixed when Keras is first imported, so
the JAX, torch and ``MirroredStrategy`` checks each run in their own process; this module
imports no framework.

Example:
    >>> callable(script_result)
    True
"""

import json
import os
import subprocess
import sys


def script_result(name: str, timeout: int = 300) -> dict:
    """Run ``tests/keras3/<name>`` and parse the JSON after its last ``RESULT `` line."""
    script = os.path.join(os.path.dirname(__file__), name)
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])
