"""Index kinds for large libraries: memory-mapped round trips, exact re-rank, shards searched as one, ``auto``;
the sampled querybank fit."""

from __future__ import annotations

import json
import os
import types

import faiss
import numpy as np
import pytest

from beatdance.errors import CheckpointError, ParameterError
from beatdance.retrieval.index import VectorIndex, normalize_rows, unit_rows
from beatdance.retrieval.index_config import IVF_KINDS, KINDS, PQ_KINDS, IndexConfig
from beatdance.retrieval.scale import AUTO_FLAT_MAX_ITEMS, auto_nlist, choose_index, faiss_gpu
from beatdance.retrieval.scoring import ModalityEmbeddings
from beatdance.retrieval.search import LIBRARY_SEARCH, fit_gallery_querybank, sample_bank

DIM = 24
# small PQ settings keep training fast: 8 one-byte codes, 16 lists (PQ still needs 39 x 256 training vectors)
SMALL = {
    "ivf": {"nlist": 16},
    "hnsw": {},
    "flat": {},
    "ivfpq": {"nlist": 16, "pq_m": 8},
    "opq-ivfpq": {"nlist": 16, "pq_m": 8, "opq_dim": 24},
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """10 000 clustered vectors (enough to train 8-bit PQ) and 30 queries near some of them."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, DIM))
    x = centres[rng.integers(0, 64, 10_000)] + 0.5 * rng.normal(size=(10_000, DIM))
    q = x[rng.integers(0, 10_000, 30)] + 0.3 * rng.normal(size=(30, DIM))
    return x.astype(np.float32), q.astype(np.float32)


@pytest.fixture(scope="module")
def exact(data) -> tuple[np.ndarray, np.ndarray]:
    x, q = data
    scores = normalize_rows(q).astype(np.float64) @ normalize_rows(x).astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.fixture(scope="module")
def built(data) -> dict[str, VectorIndex]:
    return {kind: VectorIndex.build(data[0], config=IndexConfig(dim=DIM, kind=kind, **SMALL[kind])) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_round_trips_memory_mapped(kind, built, data, tmp_path):
    index = built[kind]
    scores, ids = index.search(data[1], k=10)
    index.save(tmp_path / "music.faiss")
    loaded = VectorIndex.load(tmp_path / "music.faiss", dim=DIM)
    assert loaded.mapped and loaded.config == index.config and len(loaded) == 10_000
    again_scores, again_ids = loaded.search(data[1], k=10)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_scores, scores, atol=1e-6)
    assert (tmp_path / "music.faiss.vectors.npy").is_file() == (kind in PQ_KINDS)
    if kind in PQ_KINDS:
        assert isinstance(loaded._vectors, np.memmap)
    if kind in IVF_KINDS:  # the inverted lists are read from the mapped file, not copied
        invlists = faiss.extract_index_ivf(loaded._shards[0]).invlists
        assert isinstance(faiss.downcast_InvertedLists(invlists), faiss.OnDiskInvertedLists)
    with pytest.raises(ParameterError, match="memory-mapped"):
        loaded.add(data[0][:5])
    in_memory = VectorIndex.load(tmp_path / "music.faiss", dim=DIM, mmap=False)
    assert not in_memory.mapped
    np.testing.assert_array_equal(in_memory.search(data[1], k=10)[1], ids)


@pytest.mark.parametrize("kind", KINDS)
def test_top1_and_scores_are_exact_after_the_rerank(kind, built, data, exact):
    """Every kind returns exact cosines; with the re-rank (PQ kinds) the first result is the exact first."""
    scores, ids = built[kind].search(data[1], k=10)
    np.testing.assert_array_equal(ids[:, 0], exact[1][:, 0])
    full = normalize_rows(data[1]) @ normalize_rows(data[0]).T
    np.testing.assert_allclose(scores, np.take_along_axis(full, ids, axis=1), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_pq_codes_alone_miss_what_the_rerank_finds(data, exact):
    """With a shortlist of k (factor 1, no floor: PQ's own order) the 8-byte codes miss neighbours; k x 10 finds
    them all, and so does the default floor of 1000 re-ranked codes with factor 1."""
    x, q = data
    index = VectorIndex.build(x, config=IndexConfig(dim=DIM, kind="ivfpq", **SMALL["ivfpq"]))
    assert index.config.rerank_min == 1000
    recall = {}
    for factor, floor in ((1, 1), (10, 1), (1, 1000)):
        index.tune(rerank_factor=factor, rerank_min=floor)
        top1, top10 = index.search(q, k=1)[1], index.search(q, k=10)[1]
        recall[factor, floor] = (
            np.mean(top1[:, 0] == exact[1][:, 0]),
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10, exact[1])]),
        )
    assert recall[1, 1][0] < 0.95 and recall[1, 1][1] < 0.8
    assert recall[10, 1][0] == 1.0 and recall[10, 1][1] > 0.98
    assert recall[1, 1000] == (1.0, 1.0)
    with pytest.raises(ParameterError, match="rerank_min=0"):
        index.tune(rerank_min=0)


def test_unit_rows_are_indexed_without_a_copy(data, built, tmp_path):
    """Normalised float32 rows (here a memory-mapped .npy) are used as given: the PQ re-rank reads the mapped file,
    and the index answers as one built from an in-RAM copy; other rows are normalised into a copy."""
    x, q = data
    assert unit_rows(x) is not x and np.allclose(np.linalg.norm(unit_rows(x), axis=1), 1, atol=1e-6)
    np.save(tmp_path / "x.npy", normalize_rows(x))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert unit_rows(mapped) is mapped
    index = VectorIndex.build(mapped, config=IndexConfig(dim=DIM, kind="ivfpq", **SMALL["ivfpq"]))
    assert index._exact_vectors() is mapped
    scores, ids = index.search(q, k=10)
    want_scores, want_ids = built["ivfpq"].search(q, k=10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_shards_search_as_one_index(kind, built, data, tmp_path):
    """K shards of consecutive rows, searched as one, answer like the single index (same quantisers)."""
    sharded = VectorIndex.build(data[0], config=IndexConfig(dim=DIM, kind=kind, shards=3, **SMALL[kind]))
    sizes = [int(s.ntotal) for s in sharded._shards]
    assert sum(sizes) == 10_000 and max(sizes) - min(sizes) <= 1
    scores, ids = sharded.search(data[1], k=10)
    one_scores, one_ids = built[kind].search(data[1], k=10)
    np.testing.assert_array_equal(ids, one_ids)
    np.testing.assert_allclose(scores, one_scores, atol=1e-6)
    sharded.save(tmp_path / "dance.faiss")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("dance.faiss.") and p.name[-1].isdigit()) == [
        "dance.faiss.0",
        "dance.faiss.1",
        "dance.faiss.2",
    ]
    np.testing.assert_array_equal(VectorIndex.load(tmp_path / "dance.faiss").search(data[1], k=10)[1], ids)


def test_add_appends_to_the_last_shard(data):
    x, q = data
    index = VectorIndex(IndexConfig(dim=DIM, shards=2))
    index.add(x[:4000])
    index.add(x[4000:])
    assert len(index) == 10_000
    single = VectorIndex.build(x, config=IndexConfig(dim=DIM))
    np.testing.assert_array_equal(index.search(q, k=5)[1], single.search(q, k=5)[1])


def test_small_libraries_cannot_train_pq(data):
    with pytest.raises(ParameterError, match="needs at least 9984 vectors.*--index flat"):
        VectorIndex.build(data[0][:5000], config=IndexConfig(dim=DIM, kind="ivfpq", **SMALL["ivfpq"]))
    with pytest.raises(ParameterError, match="opq_dim=20 is not a multiple of pq_m=8"):
        IndexConfig(dim=DIM, kind="opq-ivfpq", pq_m=8, opq_dim=20)
    with pytest.raises(ParameterError, match="executor="):
        VectorIndex.build(data[0][:100], config=IndexConfig(dim=DIM), executor="threads")  # type: ignore[arg-type]


def test_factory_pads_to_a_multiple_of_the_code_size():
    assert IndexConfig(dim=1169, kind="ivfpq", nlist=256, pq_m=64).factory == "Pad1216,IVF256,PQ64"
    assert IndexConfig(dim=2560, kind="ivfpq", nlist=256, pq_m=64).factory == "IVF256,PQ64"
    assert IndexConfig(dim=2560, kind="opq-ivfpq", nlist=1024, pq_m=64).factory == "OPQ64_256,IVF1024,PQ64"


def test_a_quarter_of_the_lists_is_probed_unless_nprobe_is_given():
    assert [IndexConfig(dim=DIM, kind="ivf", nlist=n).lists_probed for n in (8, 32, 256, 1024)] == [8, 16, 64, 256]
    assert IndexConfig(dim=DIM, kind="ivf", nlist=1024, nprobe=5).lists_probed == 5
    with pytest.raises(ParameterError, match="nprobe=-1"):
        IndexConfig(dim=DIM, nprobe=-1)


def test_indexes_of_older_versions_still_load(data, tmp_path):
    """An index .json written before the PQ kinds (no pq/shard fields) loads with the defaults."""
    index = VectorIndex.build(data[0][:500], config=IndexConfig(dim=DIM, kind="ivf", nlist=8))
    index.save(tmp_path / "music.faiss")
    old = {
        "dim": DIM,
        "kind": "ivf",
        "nlist": 8,
        "nprobe": 16,
        "hnsw_m": 32,
        "hnsw_ef_search": 128,
        "threads": 0,
        "ntotal": 500,
    }
    (tmp_path / "music.faiss.json").write_text(json.dumps(old))
    loaded = VectorIndex.load(tmp_path / "music.faiss", dim=DIM)
    assert loaded.config.shards == 1 and loaded.config.lists_probed == 8 and len(loaded) == 500
    np.testing.assert_array_equal(loaded.search(data[1], k=3)[1], index.search(data[1], k=3)[1])


def test_a_config_that_does_not_match_the_files_fails_at_load(built, tmp_path):
    built["ivfpq"].save(tmp_path / "m.faiss")
    meta_path = tmp_path / "m.faiss.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "ntotal": 9_999, "shard_sizes": [9_999]}))
    with pytest.raises(CheckpointError, match="does not match its config"):
        VectorIndex.load(tmp_path / "m.faiss")
    meta_path.write_text(json.dumps({**meta, "shards": 2}))
    with pytest.raises(CheckpointError, match="missing"):
        VectorIndex.load(tmp_path / "m.faiss")
    meta_path.write_text(json.dumps({**meta, "future_option": 1}))
    with pytest.raises(CheckpointError, match="unknown fields"):
        VectorIndex.load(tmp_path / "m.faiss")
    meta_path.write_text(json.dumps(meta))
    os.remove(tmp_path / "m.faiss.vectors.npy")
    with pytest.raises(CheckpointError, match="vectors.npy"):
        VectorIndex.load(tmp_path / "m.faiss")


def test_auto_picks_flat_below_the_threshold_and_says_why():
    base = IndexConfig(dim=1169)
    small = choose_index(items=AUTO_FLAT_MAX_ITEMS - 1, base=base)
    assert small.config.kind == "flat" and "auto: flat" in small.reason and str(AUTO_FLAT_MAX_ITEMS - 1) in small.reason
    big = choose_index(items=1_000_000, base=base)
    assert big.config.kind == "ivfpq" and big.config.nlist == 1024 == auto_nlist(1_000_000)
    assert "Pad1216,IVF1024,PQ64" in big.reason and "1000000 items" in big.reason
    assert auto_nlist(100_000) == 256 and auto_nlist(10) == 64 and auto_nlist(10**9) == 4096


def _embeddings(rng: np.random.Generator, n: int) -> ModalityEmbeddings:
    fuse, head = normalize_rows(rng.normal(size=(n, DIM))), normalize_rows(rng.normal(size=(n, DIM)))
    return ModalityEmbeddings(
        fuse=fuse,
        beat_head=head,
        beat_grid=(rng.random((n, 100)) < 0.2).astype(np.float32),
        ids=[f"b{i}" for i in range(n)],
    )


def test_a_sampled_querybank_is_the_fit_on_a_seeded_subset():
    rng = np.random.default_rng(4)
    bank, gallery = _embeddings(rng, 300), _embeddings(rng, 50)
    sample = sample_bank(bank, size=120, seed=7)
    assert len(sample) == 120 and sample.ids == sorted(sample.ids, key=lambda i: int(i[1:]))
    assert sample.ids == sample_bank(bank, size=120, seed=7).ids != sample_bank(bank, size=120, seed=8).ids
    assert sample_bank(bank, size=0) is bank and sample_bank(bank, size=300) is bank
    sampled = fit_gallery_querybank(
        bank=bank, gallery=gallery, direction="m2d", settings=LIBRARY_SEARCH, bank_size=120, seed=7
    )
    direct = fit_gallery_querybank(bank=sample, gallery=gallery, direction="m2d", settings=LIBRARY_SEARCH)
    np.testing.assert_allclose(sampled.log_normaliser, direct.log_normaliser)
    np.testing.assert_array_equal(sampled.activation, direct.activation)
    assert sampled.bank_size == 120 and sampled.source["sampled_from"] == 300
    whole = fit_gallery_querybank(bank=bank, gallery=gallery, direction="m2d", settings=LIBRARY_SEARCH, bank_size=0)
    assert whole.bank_size == 300 and "sampled_from" not in whole.source
    with pytest.raises(ParameterError, match="querybank size=-1"):
        sample_bank(bank, size=-1)


@pytest.mark.slow
def test_shards_filled_as_ray_tasks_equal_the_local_build(data, built):
    if os.environ.get("CI"):
        import ray  # noqa: F401  (CI installs the [scale] extra: a missing Ray is a failure there)
    else:
        pytest.importorskip("ray", reason="Ray is the [scale] extra: pip install 'beatdance[scale]'")
    config = IndexConfig(dim=DIM, kind="ivfpq", shards=2, **SMALL["ivfpq"])
    on_ray = VectorIndex.build(data[0], config=config, executor="ray", workers=2)
    local = VectorIndex.build(data[0], config=config)
    assert [int(s.ntotal) for s in on_ray._shards] == [int(s.ntotal) for s in local._shards] == [5000, 5000]
    np.testing.assert_array_equal(on_ray.search(data[1], k=10)[1], local.search(data[1], k=10)[1])
    np.testing.assert_array_equal(on_ray.search(data[1], k=10)[1], built["ivfpq"].search(data[1], k=10)[1])


def test_faiss_builds_on_a_gpu_only_with_faiss_gpu_support(monkeypatch):
    assert faiss_gpu("cpu", kind="ivfpq") == (None, "FAISS on the CPU")
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    gpu, why = faiss_gpu("cuda:0", kind="ivfpq")
    assert gpu is None and "no GPU support" in why
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    assert faiss_gpu("cuda", kind="ivfpq") == (0, "FAISS on GPU 0")
    assert faiss_gpu("cuda:1", kind="ivf") == (1, "FAISS on GPU 1")
    for kind in ("flat", "hnsw"):
        gpu, why = faiss_gpu("cuda:1", kind=kind)
        assert gpu is None and why.startswith("FAISS on the CPU")


def test_a_gpu_build_trains_and_fills_on_the_gpu_and_answers_as_a_cpu_build(monkeypatch, data, built):
    """The GPU path with FAISS's GPU calls stood in for by CPU copies (no GPU here): the quantisers train and each
    shard fills on the 'GPU' copy, and the index that comes back answers as the CPU build."""
    moved = []

    def to_gpu(resources, gpu, index, options):
        moved.append((gpu, options.useFloat16, index.ntotal, index.is_trained))
        return faiss.clone_index(index)

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "GpuClonerOptions", types.SimpleNamespace, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", lambda index: index, raising=False)
    x, q = data
    index = VectorIndex.build(x, config=IndexConfig(dim=DIM, kind="ivfpq", shards=2, **SMALL["ivfpq"]), gpu=1)
    assert moved == [(1, True, 0, False), (1, True, 0, True), (1, True, 0, True)]  # train, then fill each shard
    np.testing.assert_array_equal(index.search(q, k=10)[1], built["ivfpq"].search(q, k=10)[1])
