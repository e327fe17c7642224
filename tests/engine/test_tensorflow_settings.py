"""The engine imports TensorFlow with oneDNN's kernels on, unless the user chose otherwise.

TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on an AVX2 CPU
it runs Eigen's kernels, and the worker's jobs took 1.5-1.8x as long (docs/benchmarks.md). A
fresh process each time: the setting is read once, when TensorFlow loads.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

PROBE = """
import os
import explain_core.engine.model
from tensorflow.python.util import _pywrap_util_port
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize("chosen, expected", [(None, "1 True"), ("0", "0 False"), ("1", "1 True")])
def test_onednn_is_on_unless_the_user_turned_it_off(chosen: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if chosen is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = chosen
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == expected
