"""`beatdance index` and `beatdance search` through the CLI entry point."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from beatdance.cli import main
from beatdance.features.store import FeatureStore
from beatdance.library import Library


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["beatdance", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _table_rows(out: str) -> list[list[str]]:
    """The cells of the ranked rows of a `beatdance search` table."""
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("│")]
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in lines]
    return [r for r in rows if r[0].isdigit()]


def test_index_then_search(small_store, small_model, small_library, small_corpus, tmp_path, monkeypatch, capsys):
    """`index` builds the library that build_library builds, and `search` prints (and with --json returns) what
    Library.search answers."""
    lib = tmp_path / "lib"
    code, out, _ = _run(
        monkeypatch, capsys, "index", small_store, "--model", small_model, "--out", lib, "--no-progress", "--json"
    )
    assert code == 0 and json.loads(out)["items"] == 12
    opened, reference = Library.open(lib), Library.open(small_library)
    assert opened.ids == reference.ids == FeatureStore.open(small_store).ids()
    for modality in ("music", "dance"):
        np.testing.assert_array_equal(opened.embeddings(modality).fuse, reference.embeddings(modality).fuse)
    code, out, _ = _run(monkeypatch, capsys, "search", lib, "--music", small_corpus / "pair_003.wav", "--top", "4")
    assert code == 0 and "pair_003.wav" in out and "beat align" in out
    api = opened.search(music=small_corpus / "pair_003.wav", top=4)
    rows = _table_rows(out)
    assert [r[:2] for r in rows] == [[str(m.rank), m.id] for m in api.matches]
    assert [(r[4], r[6]) for r in rows] == [(f"{m.score:.4g}", f"{m.beat_alignment:.3f}") for m in api.matches]
    code, out, _ = _run(
        monkeypatch,
        capsys,
        "search",
        lib,
        "--dance",
        small_corpus / "pair_000.npz",
        "--top",
        "2",
        "--hubness",
        "none",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    want = json.loads(
        json.dumps(
            opened.search(
                dance=small_corpus / "pair_000.npz", top=2, settings=opened.settings(hubness="none")
            ).to_dict()
        )
    )
    assert {k: v for k, v in result.items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}
    assert result["direction"] == "d2m" and len(result["matches"]) == 2 and result["settings"]["hubness"] == "none"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--music", "missing.wav"], "missing.wav"),
        ([], "exactly one query"),
        (["--music-id", "nope"], "not in library"),
    ],
)
def test_search_errors_exit_2(small_library, args, message, monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, "search", small_library, *args)
    assert code == 2 and message in err


def test_a_store_json_edited_after_prepare_is_refused_by_train_and_index(
    small_store, small_model, tmp_path, monkeypatch, capsys
):
    """store.json edited to 5-s windows while the clips hold 10-s ones: `train` names the clip, the disagreement and
    the fix; `index` refuses the store for a model trained on 10-s windows."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    head = json.loads((store / "store.json").read_text())
    head["config"]["window_s"] = 5.0
    (store / "store.json").write_text(json.dumps(head))
    code, _, err = _run(monkeypatch, capsys, "train", "--data", store, "--out", tmp_path / "run", "--epochs", "1")
    assert code == 2 and ".safetensors has beat grids of" in err and "5-s windows at 10 fps (50 frames)" in err
    assert "Restore store.json" in err and not (tmp_path / "run" / "last").exists()
    code, _, err = _run(
        monkeypatch, capsys, "index", store, "--model", small_model, "--out", tmp_path / "lib", "--no-progress"
    )
    assert code == 2 and "other extractor settings" in err and "window_s" in err and not (tmp_path / "lib").exists()


def test_train_fits_the_metre_prior_by_default_and_can_leave_it_out(small_store, tmp_path, monkeypatch, capsys):
    for extra, want in (((), True), (("--no-metre-prior",), False)):
        run = tmp_path / f"run{want}"
        args = ("--epochs", "1", "--embed-dim", "16", "--layers", "1", "--no-progress", *extra)
        code, _, err = _run(monkeypatch, capsys, "train", "--data", small_store, "--out", run, *args)
        assert code == 0, err
        config = json.loads((run / "best" / "config.json").read_text())
        assert config["model"]["metre_prior"] is want and ("prior" in config) is want
        if want:  # counted on the training clips
            assert 0 < sum(config["prior"]["fitted_on"].values()) <= len(FeatureStore.open(small_store).ids())


def test_search_through_a_running_service(live_server, small_library, small_corpus, monkeypatch, capsys):
    code, out, _ = _run(
        monkeypatch,
        capsys,
        "search",
        "--server",
        live_server,
        "--music",
        small_corpus / "pair_001.wav",
        "--top",
        "3",
        "--json",
    )
    remote = json.loads(out)
    code_local, out_local, _ = _run(
        monkeypatch, capsys, "search", small_library, "--music", small_corpus / "pair_001.wav", "--top", "3", "--json"
    )
    local = json.loads(out_local)
    assert code == code_local == 0
    assert [m["id"] for m in remote["matches"]] == [m["id"] for m in local["matches"]]
    # One JSON shape: the local --json match and query keys are the service's (which adds where to play it).
    assert set(remote["matches"][0]) - {"media", "plot_url"} == set(local["matches"][0])
    assert set(remote["query"]) <= set(local["query"]) | {"source"} and "source" in local["query"]
    code, out, _ = _run(monkeypatch, capsys, "search", "--server", live_server, "--dance-id", local["matches"][0]["id"])
    assert code == 0 and "dance query" in out and "music" in out
    code, _, err = _run(monkeypatch, capsys, "search", "--server", live_server, "--music-id", "nope")
    assert code == 2 and "404" in err


def test_remote_search_loads_neither_torch_nor_librosa():
    import subprocess

    code = (
        "import sys; sys.argv = ['beatdance', 'search', '--server', 'http://127.0.0.1:9', '--music-id', 'x']\n"
        "from beatdance.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'librosa', 'faiss') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]" and "cannot reach the beatdance service" in done.stderr


def test_serve_refuses_a_gpu_that_is_not_there(small_library, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    code, _, err = _run(monkeypatch, capsys, "serve", small_library, "--device", "cuda", "--port", "1")
    assert code == 2 and "--device cuda" in err and "0 usable CUDA GPU" in err
