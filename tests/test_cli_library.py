"""`beatdance index` and `beatdance search` through the CLI entry point."""

from __future__ import annotations

import json
import sys

import pytest

from beatdance.cli import main


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["beatdance", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_index_then_search(small_store, small_model, small_corpus, tmp_path, monkeypatch, capsys):
    lib = tmp_path / "lib"
    code, out, _ = _run(monkeypatch, capsys, "index", small_store, "--model", small_model, "--out", lib, "--no-progress", "--json")
    assert code == 0 and json.loads(out)["items"] == 12
    code, out, _ = _run(monkeypatch, capsys, "search", lib, "--music", small_corpus / "pair_003.wav", "--top", "4")
    assert code == 0 and "pair_003.wav" in out and "beat align" in out and out.count("_000") >= 1
    code, out, _ = _run(monkeypatch, capsys, "search", lib, "--dance", small_corpus / "pair_000.npz", "--top", "2",
                        "--hubness", "none", "--json")
    result = json.loads(out)
    assert code == 0 and result["direction"] == "d2m" and len(result["matches"]) == 2
    assert result["settings"]["hubness"] == "none" and result["matches"][0]["modality"] == "music"


@pytest.mark.parametrize("args, message", [
    (["--music", "missing.wav"], "missing.wav"),
    ([], "exactly one query"),
    (["--music-id", "nope"], "not in library"),
])
def test_search_errors_exit_2(small_library, args, message, monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, "search", small_library, *args)
    assert code == 2 and message in err


def test_search_through_a_running_service(live_server, small_library, small_corpus, monkeypatch, capsys):
    code, out, _ = _run(monkeypatch, capsys, "search", "--server", live_server, "--music", small_corpus / "pair_001.wav",
                        "--top", "3", "--json")
    remote = json.loads(out)
    code_local, out_local, _ = _run(monkeypatch, capsys, "search", small_library, "--music", small_corpus / "pair_001.wav",
                                    "--top", "3", "--json")
    local = json.loads(out_local)
    assert code == code_local == 0
    assert [m["id"] for m in remote["matches"]] == [m["clip_id"] for m in local["matches"]]
    code, out, _ = _run(monkeypatch, capsys, "search", "--server", live_server, "--dance-id", local["matches"][0]["clip_id"])
    assert code == 0 and "dance query" in out and "music" in out
    code, _, err = _run(monkeypatch, capsys, "search", "--server", live_server, "--music-id", "nope")
    assert code == 2 and "404" in err


def test_remote_search_loads_neither_torch_nor_librosa():
    import subprocess

    code = ("import sys; sys.argv = ['beatdance', 'search', '--server', 'http://127.0.0.1:9', '--music-id', 'x']\n"
            "from beatdance.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'librosa', 'faiss') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]" and "cannot reach the beatdance service" in done.stderr
