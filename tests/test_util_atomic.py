"""write_dir_atomically: a swap killed half way is repaired, temp folders of dead writers are removed."""

from __future__ import annotations

import subprocess
import sys

from beatdance.util import recover_interrupted_swap, write_dir_atomically


def _fill(text: str):
    def fill(tmp):
        (tmp / "data.txt").write_text(text)
    return fill


def test_a_swap_killed_between_its_renames_is_put_back(tmp_path):
    target = tmp_path / "lib"
    write_dir_atomically(target, _fill("v1"))
    target.rename(tmp_path / ".lib.old")  # what a kill between the two renames leaves: no lib, the old one aside
    recover_interrupted_swap(target)
    assert (target / "data.txt").read_text() == "v1" and not (tmp_path / ".lib.old").exists()
    target.rename(tmp_path / ".lib.old")
    write_dir_atomically(target, _fill("v2"))  # the next write repairs first, then swaps
    assert (target / "data.txt").read_text() == "v2" and not (tmp_path / ".lib.old").exists()


def test_temp_folders_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".lib.tmp-{dead.stdout.strip()}-x1"
    live = tmp_path / f".lib.tmp-{__import__('os').getpid()}-x2"
    orphan.mkdir()
    live.mkdir()
    write_dir_atomically(tmp_path / "lib", _fill("v1"))
    assert not orphan.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "lib"])


def test_atomically_written_files_get_the_usual_permissions(tmp_path):
    import os

    from beatdance.util import atomic_write_bytes

    mask = os.umask(0o022)
    try:
        import beatdance.util as util

        saved, util._UMASK = util._UMASK, 0o022
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(mask)
        util._UMASK = saved
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
