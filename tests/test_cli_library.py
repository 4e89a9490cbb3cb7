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
