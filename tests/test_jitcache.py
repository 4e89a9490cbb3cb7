"""librosa's numba kernels (the HPSS option only): compiled once, verified cheaply, repaired when corrupt, never
touched by commands that do not use them.

The slow tests run real processes against a temporary NUMBA_CACHE_DIR: from an empty cache, two
``beatdance warmup`` and two HPSS beat trackings started at the same time, twice (on the old code, processes
compiling at once left a cache on which every later one segfaulted); then the cache is corrupted the way that
race corrupts it and the next HPSS run repairs it. A plain ``beats`` compiles nothing. The fast tests check
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

SONG = "cc_music/sorohanro_-_solo-trumpet-06.ogg"


def _env(cache: Path) -> dict[str, str]:
    # NUMBA_OPT=0 compiles about a third faster; the cache and its races are the same at every level.
    return {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_OPT": "0", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}


def _command(args: list[str], *, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "beatdance.cli", *args],
        env=_env(cache),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _hpss_beats(song: Path, *, cache: Path) -> subprocess.Popen[str]:
    """Beats of 10 s of ``song`` with the HPSS option, the one path that runs librosa's kernels."""
    code = (
        "from beatdance.beats.music import MusicBeatConfig, track_music_beats\n"
        "from beatdance.media.audio import load_audio\n"
        f"y, sr = load_audio({str(song)!r}, sr=22050, duration_s=10.0)\n"
        "assert track_music_beats(y=y, sr=sr, config=MusicBeatConfig(hpss=True)).times_s.size > 4\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], env=_env(cache), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
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
    """An empty kernel cache used by two rounds of two ``warmup`` commands and two HPSS trackings, all four
    started at once; the cache folder and each process's exit status and stderr."""
    cache = tmp_path_factory.mktemp("race") / "numba"
    runs = []
    for round_ in range(2):
        started = [_command(["warmup"], cache=cache) for _ in range(2)]
        started += [_hpss_beats(real_media / SONG, cache=cache) for _ in range(2)]
        runs += [_finish(p) for p in started]
        assert jitcache.is_verified(folder=cache), f"round {round_}: a process compiled kernels after the warm-up"
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
    status, err = _finish(_hpss_beats(real_media / SONG, cache=cache))
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


@pytest.mark.data
def test_commands_without_hpss_never_touch_the_kernel_cache(real_media, tmp_path):
    cache = tmp_path / "numba"
    status, err = _finish(_command(["beats", str(real_media / SONG), "--json"], cache=cache))
    assert status == 0, err
    assert "compiling" not in err and not cache.exists()
