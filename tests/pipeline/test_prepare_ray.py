"""`prepare --executor ray` on a local Ray instance (one, shared by the module): the same store as a serial run,
bad files reported while the rest complete, a dead actor replaced, a killed driver resumed without redoing clips."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from beatdance.errors import ParameterError
from beatdance.features.store import FeatureStore
from beatdance.pipeline.executors import map_unordered
from beatdance.pipeline.prepare import prepare
from beatdance.synth.media import write_corpus

NUM_PAIRS, CLIPS_PER_PAIR = 3, 2


@pytest.fixture(scope="module")
def ray_address():
    """The address of a 2-CPU local Ray instance; prepare in this process joins it, CLI runs get the address."""
    if os.environ.get("CI"):
        import ray  # CI installs the [scale] extra: a missing Ray is a failure there, not a skip
    else:
        ray = pytest.importorskip("ray", reason="Ray is the [scale] extra: pip install 'beatdance[scale]'")
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 1024**2
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Synthetic music + motion-capture pairs, and one pair whose keypoint file is garbage."""
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(out_dir=folder, num_pairs=NUM_PAIRS, seed=5, duration_s=21.0, video=False, show_progress=False)
    (folder / "bad.npz").write_bytes(np.random.default_rng(0).bytes(3000))
    with open(folder / "manifest.csv", "a", newline="") as fh:
        csv.writer(fh).writerow(["pair_000.wav", "bad.npz", "0"])
    return folder


@pytest.fixture(scope="module")
def serial_store(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "store"
    prepare(inputs=[corpus], out=out, show_progress=False)
    return out


def assert_same_store(a_path: Path, b_path: Path) -> None:
    """Same clip ids, byte-identical clip files (arrays and metadata), same splits."""
    a, b = FeatureStore.open(a_path), FeatureStore.open(b_path)
    assert a.ids() == b.ids() and len(a.ids()) == NUM_PAIRS * CLIPS_PER_PAIR
    for cid in a.ids():
        assert a.clip_path(cid).read_bytes() == b.clip_path(cid).read_bytes(), cid
    for split in ("train", "val", "test"):
        assert a.split_ids(split) == b.split_ids(split)


def extract_skips(store: Path) -> list[dict[str, str]]:
    return [s for s in FeatureStore.open(store).skips() if s["stage"] == "extract"]


@pytest.mark.slow
def test_ray_store_is_the_serial_store_and_bad_files_are_reported(ray_address, corpus, serial_store, tmp_path):
    report = prepare(inputs=[corpus], out=tmp_path / "ray", executor="ray", workers=2, show_progress=False)
    assert report.clips_written == NUM_PAIRS * CLIPS_PER_PAIR and report.pairs == NUM_PAIRS + 1
    assert_same_store(tmp_path / "ray", serial_store)
    [bad] = extract_skips(tmp_path / "ray")
    assert bad["input"].endswith("bad.npz") and bad["reason"]
    assert extract_skips(serial_store) == [bad]
    assert [s["input"] for s in report.skipped] == [bad["input"]]


@pytest.mark.slow
def test_a_dead_actor_loses_only_its_item_and_is_replaced(ray_address):
    def work(item: int) -> int:
        if item == 2:
            os._exit(3)  # the actor's process dies, as when a decoder crashes
        return item * 10

    results = list(
        map_unordered(work, list(range(7)), executor="ray", workers=2, on_lost=lambda item, why: f"lost {item}: {why}")
    )
    lost = [r for r in results if isinstance(r, str)]
    assert sorted(r for r in results if isinstance(r, int)) == [0, 10, 30, 40, 50, 60]
    assert len(lost) == 1 and lost[0].startswith("lost 2: the Ray worker running it died")


@pytest.mark.slow
def test_killed_ray_driver_resumes_without_redoing_clips(ray_address, corpus, serial_store, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "beatdance.cli.__main__",
        "prepare",
        str(corpus),
        "--out",
        str(out),
        "--no-progress",
        "--executor",
        "ray",
        "--ray-address",
        ray_address,
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "clips").glob("*.safetensors"))) >= CLIPS_PER_PAIR:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the driver finished before it could be killed"
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "clips").glob("*.safetensors")}
    assert CLIPS_PER_PAIR <= len(done_before) < NUM_PAIRS * CLIPS_PER_PAIR, "the run was not interrupted half-way"
    again = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert "clips written" in again.stdout and "skipped" in again.stdout and "bad.npz" in again.stdout, again.stdout
    for name, mtime in done_before.items():  # finished clips were not rewritten
        assert (out / "clips" / name).stat().st_mtime_ns == mtime
    assert_same_store(out, serial_store)
    assert [s["input"] for s in extract_skips(out)] == [s["input"] for s in extract_skips(serial_store)]


def test_unknown_executor_or_address_without_ray_is_refused_before_the_store_is_made(corpus, tmp_path):
    with pytest.raises(ParameterError, match="not one of"):
        prepare(inputs=[corpus], out=tmp_path / "a", executor="dask", show_progress=False)
    with pytest.raises(ParameterError, match="needs --executor ray"):
        prepare(inputs=[corpus], out=tmp_path / "b", ray_address="auto", show_progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
