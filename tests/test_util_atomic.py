"""write_dir_atomically: a writer SIGKILLed at any step leaves a path that opens as the old or the new folder (plain
folders, checkpoints, libraries); readers never see it missing while a writer swaps; debris is removed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import beatdance.util as util
from beatdance.util import atomic_write_bytes, resolve_dir, write_dir_atomically

# A driver process for one kind of write: it forks a writer per step k, arms it to SIGKILL itself before its k-th
# file-system change (mkdir, rename, replace, symlink, unlink, rmdir, chmod: shutil.rmtree's steps too), snapshots
# the folder the kill left (symlinks kept) to SNAPS/k, puts the initial folder back, and goes on until a writer
# runs to its end (its snapshot is the new state). Forks start from a driver that ran no multi-threaded code.
_DRIVER = r"""
import json, os, shutil, signal, sys
from pathlib import Path

root, snaps, kind, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
steps = 0

def step():
    global steps
    steps += 1
    if steps == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)

def arm():
    def counted(fn):
        def wrapper(*a, **kw):
            step()
            return fn(*a, **kw)
        return wrapper
    for name in ("mkdir", "rename", "replace", "symlink", "unlink", "rmdir", "chmod"):
        setattr(os, name, counted(getattr(os, name)))

if kind == "dir":
    import beatdance.util as util
    util._REPLACED_KEEP_S = 0.0  # so that the write also deletes the version it replaced: those steps count too

    def fill(tmp):
        (tmp / "a.txt").write_text("new")
        step()
        (tmp / "b.txt").write_text("new")

    def write():
        util.write_dir_atomically(root / "target", fill)
else:
    import torch
    torch.set_num_threads(1)
    if kind == "checkpoint":
        from beatdance.model.blender import BeatBlender, BlenderConfig
        from beatdance.model.checkpoint import save_checkpoint
        torch.manual_seed(1)
        model = BeatBlender(BlenderConfig.from_dict(args["model"]))

        def write():
            save_checkpoint(root / "run" / "best", model=model, config={"tag": "new"})
    else:
        from beatdance.library import build_library

        def write():
            build_library(data=args["store"], out=root / "lib", add=True, show_progress=False)

initial = snaps / "initial"
shutil.copytree(root, initial, symlinks=True)
KILL_AT = 1
while True:
    pid = os.fork()
    if pid == 0:
        arm()
        write()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    shutil.copytree(root, snaps / f"{KILL_AT:03d}", symlinks=True)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        break
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    shutil.rmtree(root)
    shutil.copytree(initial, root, symlinks=True)
    KILL_AT += 1
print(KILL_AT)
"""


def _kill_at_every_step(tmp_path: Path, root: Path, kind: str, **args) -> list[Path]:
    """Snapshots of ``root`` after a ``kind`` write killed at step 1, 2, ... and the one of the write run to its end."""
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(root), str(snaps), kind, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    runs = int(done.stdout.split()[-1])
    return [snaps / f"{k:03d}" for k in range(1, runs + 1)]


def _fill(text: str):
    def fill(tmp):
        (tmp / "a.txt").write_text(text)
        (tmp / "b.txt").write_text(text)

    return fill


def _read(folder: Path) -> str:
    """The text of a complete folder (a.txt and b.txt agree)."""
    a, b = (folder / "a.txt").read_text(), (folder / "b.txt").read_text()
    assert a == b, (a, b)
    return a


@pytest.mark.parametrize("layout", ["versioned", "plain"])
def test_a_writer_killed_at_every_step_leaves_the_old_or_the_new_folder(tmp_path, monkeypatch, layout):
    """Killed at any step, the path opens as the old or the new folder as it is, with no repair; only a plain folder
    (an older beatdance's layout) being converted may lack the path, and the next reader puts it back. The next
    write removes what the killed one left: its temp folder, links, intent file and replaced versions."""
    root = tmp_path / "root"
    target = root / "target"
    if layout == "versioned":
        write_dir_atomically(target, _fill("older"))
        write_dir_atomically(target, _fill("old"))
    else:
        target.mkdir(parents=True)
        _fill("old")(target)
    snaps = _kill_at_every_step(tmp_path, root, "dir")
    monkeypatch.setattr(util, "_REPLACED_KEEP_S", 0.0)
    seen = []
    for snap in snaps:
        path = snap / "target"
        if os.path.lexists(path):
            seen.append(_read(path))  # the path itself, before any repair
        else:
            assert layout == "plain"  # only a conversion has a moment without the path...
            seen.append(_read(resolve_dir(path)))  # ...which the next reader finishes
            assert seen[-1] == "old" and _read(path) == "old"
        write_dir_atomically(path, _fill("next"))
        assert _read(path) == "next" and sorted(p.name for p in snap.iterdir()) == [os.readlink(path), "target"]
    assert set(seen) == {"old", "new"} and seen[-1] == "new"
    assert len(snaps) >= (14 if layout == "versioned" else 15)  # every step of the write was a kill point


def test_a_reader_never_sees_the_path_missing_or_partial_while_a_writer_swaps(tmp_path):
    target = tmp_path / "target"
    write_dir_atomically(target, _fill("0" * 1000))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys\nfrom beatdance.util import write_dir_atomically\n"
                "for i in range(1, 151):\n"
                "    write_dir_atomically(sys.argv[1], lambda tmp: [(tmp / f).write_text(str(i) * 1000) for f in ('a.txt', 'b.txt')])\n"
            ),
            str(target),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen, reads = set(), 0
    try:
        while writer.poll() is None:
            seen.add(_read(resolve_dir(target)))  # resolved once: both files from one version
            assert (target / "a.txt").read_text()  # and the path itself opens, no repair
            reads += 1
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0, writer.stderr.read()
    assert _read(target) == "150" * 1000 and len(seen) > 10, (len(seen), reads)  # the reads overlapped the swaps


def test_removing_the_link_removes_the_folder_and_the_next_write_clears_its_versions(tmp_path, monkeypatch):
    target = tmp_path / "lib"
    write_dir_atomically(target, _fill("v1"))
    write_dir_atomically(target, _fill("v2"))
    target.unlink()  # what `rm lib` does to the link
    assert not resolve_dir(target).exists()  # not brought back
    monkeypatch.setattr(util, "_REPLACED_KEEP_S", 0.0)
    write_dir_atomically(target, _fill("v3"))
    assert _read(target) == "v3" and sorted(p.name for p in tmp_path.iterdir()) == [os.readlink(target), "lib"]


def test_the_last_replaced_version_is_kept_for_a_while_for_readers_still_reading_it(tmp_path, monkeypatch):
    target = tmp_path / "lib"
    for text in ("v1", "v2", "v3"):
        write_dir_atomically(target, _fill(text))
    versions = sorted(p for p in tmp_path.iterdir() if p.name != "lib")
    assert [_read(v) for v in versions] == ["v2", "v3"]  # v2 replaced less than a minute ago: kept; v1 is not
    monkeypatch.setattr(util, "_REPLACED_KEEP_S", 0.0)
    write_dir_atomically(target, _fill("v4"))
    assert [p.name for p in tmp_path.iterdir() if p.name != "lib"] == [os.readlink(target)]


def test_a_link_of_the_users_own_is_followed(tmp_path):
    elsewhere = tmp_path / "big_disk" / "lib"
    elsewhere.mkdir(parents=True)
    _fill("mine")(elsewhere)
    (tmp_path / "lib").symlink_to(elsewhere)
    write_dir_atomically(tmp_path / "lib", _fill("new"))
    assert os.readlink(tmp_path / "lib") == str(elsewhere) and _read(tmp_path / "lib") == "new"
    assert os.readlink(elsewhere).startswith(".lib.v-") and resolve_dir(tmp_path / "lib").parent == elsewhere.parent


def test_an_older_beatdances_swap_killed_between_its_renames_is_put_back(tmp_path):
    target = tmp_path / "lib"
    target.mkdir()
    _fill("v1")(target)
    target.rename(tmp_path / ".lib.old")  # what a kill between its two renames left: no lib, the old one aside
    assert _read(resolve_dir(target)) == "v1" and not (tmp_path / ".lib.old").exists()
    target.rename(tmp_path / ".lib.old")
    write_dir_atomically(target, _fill("v2"))  # the next write repairs first, then swaps
    assert _read(target) == "v2" and not (tmp_path / ".lib.old").exists()


def test_temp_folders_and_links_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".lib.tmp-{dead.stdout.strip()}-x1"
    orphan_link = tmp_path / f".lib.link-{dead.stdout.strip()}-x1"
    live = tmp_path / f".lib.tmp-{os.getpid()}-x2"
    orphan.mkdir()
    orphan_link.symlink_to("nowhere")
    live.mkdir()
    write_dir_atomically(tmp_path / "lib", _fill("v1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, os.readlink(tmp_path / "lib"), "lib"])


def test_atomically_written_files_and_folders_get_the_usual_permissions(tmp_path, monkeypatch):
    mask = os.umask(0o022)
    try:
        monkeypatch.setattr(util, "_UMASK", 0o022)
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        write_dir_atomically(tmp_path / "lib", _fill("v1"))

        def private_file(folder):  # safetensors' save_file writes 0600 files
            (folder / "sub").mkdir(mode=0o700)
            (folder / "sub" / "w.bin").write_bytes(b"x")
            os.chmod(folder / "sub" / "w.bin", 0o600)

        write_dir_atomically(tmp_path / "ckpt", private_file)
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert resolve_dir(tmp_path / "lib").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    written = resolve_dir(tmp_path / "ckpt")
    assert (written / "sub").stat().st_mode & 0o777 == 0o755 and (
        written / "sub" / "w.bin"
    ).stat().st_mode & 0o777 == 0o644


def test_a_checkpoint_save_killed_at_every_step_leaves_the_old_or_the_new_checkpoint(tmp_path):
    import torch
    from safetensors.torch import load_file

    from beatdance.model.blender import BeatBlender, BlenderConfig
    from beatdance.model.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint

    config = BlenderConfig(music_dim=6, dance_dim=5, embed_dim=8, num_layers=1, num_heads=2, ff_dim=16)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "root" / "run" / "best", model=BeatBlender(config), config={"tag": "old"})
    old = load_file(str(tmp_path / "root" / "run" / "best" / WEIGHTS))
    snaps = _kill_at_every_step(tmp_path, tmp_path / "root", "checkpoint", model=config.to_dict())
    tags = []
    for snap in snaps:
        best = snap / "run" / "best"
        tags.append(json.loads((best / "config.json").read_text())["tag"])  # the path itself, no repair
        net, saved = load_checkpoint(snap / "run")
        assert saved["tag"] == tags[-1]
        same = all(torch.equal(v, old[k]) for k, v in net.state_dict().items())
        assert same == (tags[-1] == "old")  # weights and config of one save
    assert len(snaps) >= 10 and set(tags) == {"old", "new"} and tags[-1] == "new"


@pytest.mark.slow
def test_a_library_add_killed_at_every_step_leaves_the_old_or_the_new_library(small_store, small_model, tmp_path):
    """`index --add` SIGKILLed before each file-system step (its fill, the swap between the renames, the clean-up):
    the path opens, as it is, as the 8-item library before or the 12-item one after."""
    from beatdance.features.store import FeatureStore
    from beatdance.library import Library, LibraryConfig, build_library

    store_path = tmp_path / "store"
    shutil.copytree(small_store, store_path)
    store = FeatureStore.open(store_path)
    store.write_splits({"train": store.ids()[:8], "val": [], "test": store.ids()[8:]})
    build_library(
        data=store_path,
        model=small_model,
        out=tmp_path / "root" / "lib",
        split="train",
        show_progress=False,
        config=LibraryConfig(querybank="test"),
    )
    snaps = _kill_at_every_step(tmp_path, tmp_path / "root", "library", store=str(store_path))
    sizes = []
    for snap in snaps:
        sizes.append(json.loads((snap / "lib" / "library.json").read_text())["items"])  # the path itself, no repair
        lib = Library.open(snap / "lib")
        assert len(lib) == sizes[-1] and lib.ids == store.ids()[: sizes[-1]]
    assert len(snaps) >= 30 and set(sizes) == {8, 12} and sizes[-1] == 12
    np.testing.assert_array_equal(
        Library.open(snaps[-1] / "lib").embeddings("music", np.arange(8)).fuse,
        Library.open(snaps[0] / "lib").embeddings("music").fuse,
    )
