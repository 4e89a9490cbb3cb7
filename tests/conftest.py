"""Shared fixtures: the path of ../shared/data (skipped cleanly when absent, a failure under CI), offline settings, a
small library, brute-force retrieval metrics."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beatdance.features.loading import dataset_config
from beatdance.features.store import FeatureStore
from beatdance.library import LibraryConfig, build_library
from beatdance.model.blender import BlenderConfig
from beatdance.pipeline.prepare import PrepareConfig, prepare
from beatdance.synth.media import write_corpus
from beatdance.train.config import TrainConfig
from beatdance.train.trainer import train

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BEATDANCE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_shared_data() -> Path:
    """Root of the real test data. Where it is missing the calling test is skipped, except under CI (``CI`` set, as
    ``.ci/run`` is run), where it fails: CI must run the data tests, not pass by skipping them."""
    if not SHARED_DATA.is_dir():
        message = f"real data not found at {SHARED_DATA} (set BEATDANCE_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the data tests")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real test data (see require_shared_data)."""
    return require_shared_data()


# A small real library, shared by the library, CLI and service tests: synthetic songs and
# motion-capture dances -> prepare -> a tiny trained model -> index (about 5 s in all).


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    write_corpus(out_dir=corpus, num_pairs=4, seed=11, duration_s=20.5, video=False, show_progress=False)
    return corpus


@pytest.fixture(scope="session")
def small_store(small_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "store"
    report = prepare(inputs=[small_corpus], out=out, config=PrepareConfig(hop_s=5.0), show_progress=False)
    assert report.clips_written == 12, report.skipped
    return out


def train_small_model(store_path: Path, run: Path, *, epochs: int = 2) -> Path:
    """A tiny model (32-d, one layer, with the metre prior) trained on every clip of the store at ``store_path``
    into ``run``."""
    store = FeatureStore.open(store_path)
    fs = store.load_clips(store.ids())
    cfg = BlenderConfig(
        music_dim=fs.music_dim,
        dance_dim=fs.dance_dim,
        embed_dim=32,
        num_layers=1,
        num_heads=2,
        ff_dim=64,
        metre_prior=True,
    )
    train(
        train_set=fs,
        val_set=None,
        model_config=cfg,
        config=TrainConfig(epochs=epochs, batch_size=6, lr=1e-3, evals_per_epoch=0),
        out=run,
        data_info=dataset_config(store_path),
        show_progress=False,
    )
    return run


@pytest.fixture(scope="session")
def small_model(small_store, tmp_path_factory) -> Path:
    return train_small_model(small_store, tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="session")
def small_library(small_store, small_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lib") / "lib"
    build_library(data=small_store, model=small_model, out=out, config=LibraryConfig(), show_progress=False)
    return out


# Brute-force retrieval metrics, one pair at a time, to check the library's vectorised ones against.


def load_benchmark(name: str) -> Any:
    """``benchmarks/<name>.py`` as a module (the scripts are no package), registered in ``sys.modules`` so that
    its dataclasses and its imports of sibling scripts resolve."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def put_split_clip(store: FeatureStore, clip_id: str, split: Any, i: int, **extra: Any) -> None:
    """Clip ``i`` of a synthetic feature split (``synth.features``) into ``store`` as ``clip_id``, its beat times
    read off its 10-fps beat grids, with ``extra`` (rhythm arrays, meta) as given."""
    store.put(
        clip_id,
        music=split.music[i],
        dance=split.dance[i],
        music_beat=split.music_beat[i],
        dance_beat=split.dance_beat[i],
        music_beat_times=np.flatnonzero(split.music_beat[i]) / 10.0,
        dance_beat_times=np.flatnonzero(split.dance_beat[i]) / 10.0,
        **extra,
    )


def cosine_scores(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(Q, G) cosine similarities in float64 of the rows of two embedding matrices (flattened per row)."""
    q, g = (np.asarray(x, dtype=np.float64).reshape(len(x), -1) for x in (query, gallery))
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return np.array([[float(a @ b) for b in g] for a in q])


def pessimistic_ranks(scores: np.ndarray, *, tie: float = 1e-6) -> np.ndarray:
    """0-based rank of item i in row i: every other item scoring at least as high (within ``tie``) ranks above it."""
    return np.array(
        [
            sum(1 for j in range(scores.shape[1]) if j != i and scores[i, j] >= scores[i, i] - tie)
            for i in range(scores.shape[0])
        ]
    )


def recall_table(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10 (percent) and MedR (1-based) of 0-based ranks."""
    return {**{f"R@{k}": 100.0 * float(np.mean(ranks < k)) for k in (1, 5, 10)}, "MedR": float(np.median(ranks) + 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a background thread: its URL, while in the block."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server(small_library, tmp_path_factory) -> Iterator[str]:
    """``beatdance serve`` of the small library (uvicorn in a background thread); yields its URL."""
    from beatdance.service import create_app

    with serving(create_app(small_library, cache_dir=tmp_path_factory.mktemp("service-cache"))) as url:
        yield url
