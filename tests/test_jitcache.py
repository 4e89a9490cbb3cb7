"""librosa's numba kernels (HPSS only): compiled once before any worker, verified cheaply, and repaired when corrupt.

The slow tests run real commands in subprocesses against a temporary NUMBA_CACHE_DIR: from an empty
cache, ``prepare --workers 2`` and ``beats`` started at the same time, then again (on the old code, one
round in four died with BrokenProcessPool and left a cache on which every ``beats`` segfaulted); then the
cache is corrupted the way that race corrupts it and the next command repairs it. The fast tests check
the stamp, the lock-free path and the repair logic with a stand-in for the child process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_shared_data

from beatdance import jitcache
from beatdance.errors import KernelCacheError

DWM_PAIRS = ("DANCE_W_25", "DANCE_W_16")  # the two shortest songs (90 s)
SONG = "cc_music/sorohanro_-_solo-trumpet-06.ogg"


def _command(args: list[str], *, cache: Path) -> subprocess.Popen[str]:
    # NUMBA_OPT=0 compiles about a third faster; the cache and its races are the same at every level.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_OPT": "0", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        [sys.executable, "-m", "beatdance.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Exit status (negative: killed by that signal) and stderr of a command."""
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.fixture(scope="module")
def real_media() -> Path:
    """../shared/data; its absence skips these tests, and fails them under CI."""
    return require_shared_data()


@pytest.fixture(scope="module")
def raced_cache(real_media, tmp_path_factory) -> tuple[Path, list[tuple[int, str]]]:
    """An empty kernel cache used by two rounds of ``prepare --workers 2`` and ``beats``, both commands started at
    once; the cache folder and each command's exit status and stderr."""
    work = tmp_path_factory.mktemp("race")
    cache = work / "numba"
    pairs = [str(real_media / "dance_with_melody" / name) for name in DWM_PAIRS]
    runs = []
    for round_ in range(2):
        started = [
            _command(
                ["prepare", *pairs, "--out", str(work / f"store{round_}"), "--workers", "2", "--no-progress"],
                cache=cache,
            ),
            _command(["beats", str(real_media / SONG), "--json"], cache=cache),
        ]
        runs += [_finish(p) for p in started]
        assert jitcache.is_verified(folder=cache), f"round {round_}: a worker compiled kernels after the warm-up"
    return cache, runs


@pytest.mark.slow
@pytest.mark.data
def test_commands_started_together_on_an_empty_cache_never_crash(raced_cache):
    cache, runs = raced_cache
    for status, err in runs:
        assert status == 0, err
    messages = "".join(err for _, err in runs)
    assert messages.count("compiling librosa's numba kernels once") == 1  # one process compiled, under the lock
    assert "corrupt" not in messages
    assert jitcache.is_verified(folder=cache)  # nothing was compiled again by the workers or the later commands


@pytest.mark.slow
@pytest.mark.data
def test_a_corrupt_cache_is_cleared_with_a_message_and_the_command_runs(raced_cache, real_media, tmp_path):
    cache = tmp_path / "numba"
    shutil.copytree(raced_cache[0], cache)
    # What the race does: an index whose entries hold another kernel's machine code (here in the inverse STFT
    # of the HPSS option, the one part of beatdance that still runs librosa's kernels).
    (donor,) = cache.glob("librosa_*/filters.__window_ss_fill-*.py*.1.nbc")
    (victim,) = cache.glob("core_*/spectrum.__overlap_add-*.py*.1.nbc")
    shutil.copyfile(donor, victim)
    status, err = _finish(_command(["beats", str(real_media / SONG)], cache=cache))
    assert status == 0, err
    assert f"the numba kernel cache in {cache} was corrupt (a check failed with exit status 1" in err
    assert "cleared it, compiling again" in err
    assert len([line for line in err.splitlines() if line.startswith("beatdance:")]) == 1
    assert jitcache.is_verified(folder=cache)


@pytest.fixture
def fake_cache(tmp_path, monkeypatch) -> Path:
    """A NUMBA_CACHE_DIR holding two fake cache files, with no stamp yet."""
    folder = tmp_path / "numba"
    (folder / "librosa_0").mkdir(parents=True)
    for name in ("beat.f-1.py311.nbi", "beat.f-1.py311.1.nbc"):
        (folder / "librosa_0" / name).write_bytes(b"garbage")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(folder))
    return folder


def _child(monkeypatch, code: str) -> None:
    """Replace the kernel check run in the child process by ``code``."""
    monkeypatch.setattr(jitcache, "_CHILD", code)


def test_verified_cache_costs_a_few_milliseconds_and_notices_changes(fake_cache, monkeypatch, capsys):
    _child(monkeypatch, "pass")
    jitcache.ensure_kernels()
    assert capsys.readouterr().err == ""  # the cache had files, so nothing was announced
    started = time.perf_counter()
    jitcache.ensure_kernels()
    assert time.perf_counter() - started < 0.2
    assert jitcache.is_verified(folder=fake_cache)
    (fake_cache / "librosa_0" / "beat.f-1.py311.2.nbc").write_bytes(b"new")
    assert not jitcache.is_verified(folder=fake_cache)


def test_check_killed_by_a_signal_clears_the_cache_once_with_one_line(fake_cache, monkeypatch, capsys):
    # Crashes like a corrupt cache while cache files exist, succeeds once they are gone.
    _child(
        monkeypatch,
        "import glob, os, signal\n"
        "if glob.glob(os.environ['NUMBA_CACHE_DIR'] + '/*/*.nbc'): os.kill(os.getpid(), signal.SIGSEGV)",
    )
    jitcache.ensure_kernels()
    err = capsys.readouterr().err
    assert err == (
        f"beatdance: the numba kernel cache in {fake_cache} was corrupt (a check died with SIGSEGV); "
        "cleared it, compiling again\n"
    )
    assert not list(fake_cache.rglob("*.nb*"))
    assert jitcache.is_verified(folder=fake_cache)


def test_check_failing_on_a_fresh_cache_raises_kernel_cache_error(fake_cache, monkeypatch):
    _child(monkeypatch, "raise SystemExit('librosa is broken')")
    with pytest.raises(KernelCacheError, match="a fresh compile failed with exit status 1: librosa is broken"):
        jitcache.ensure_kernels()
    assert not jitcache.is_verified(folder=fake_cache)


def test_cache_folder_is_per_user_unless_numba_cache_dir_is_set(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jitcache.cache_dir() == tmp_path / "beatdance" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert jitcache.cache_dir() == tmp_path / "mine"


def test_unwritable_cache_folder_raises_kernel_cache_error(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "file" / "numba"))
    with pytest.raises(KernelCacheError, match="set NUMBA_CACHE_DIR to a writable folder"):
        jitcache.ensure_kernels()
