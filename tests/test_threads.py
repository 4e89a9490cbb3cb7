"""Thread pools sized to the usable cores; OpenMP threads sleep when idle."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from beatdance.errors import ParameterError
from beatdance.threads import limited_threads, resolve_threads, usable_cores


def test_threads_default_to_the_cores_this_process_may_use():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert resolve_threads(None) == usable_cores() and resolve_threads(3) == 3
    with pytest.raises(ParameterError, match="threads"):
        resolve_threads(0)


def test_limited_threads_caps_torch_and_restores_it():
    before = torch.get_num_threads()
    with limited_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_importing_beatdance_makes_idle_openmp_threads_sleep_unless_the_user_chose():
    code = "import os, beatdance; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
        == "PASSIVE"
    )
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "ACTIVE"
    )
