"""Without ../shared/data the data tests are skipped on a developer's machine but fail under CI."""

from __future__ import annotations

import conftest
import pytest


def _outcome() -> tuple[str, str]:
    """What require_shared_data does: ("skip" | "fail", message) or ("ok", path). Caught here, so that a skip
    where a failure is due cannot skip this test."""
    try:
        return "ok", str(conftest.require_shared_data())
    except pytest.skip.Exception as exc:
        return "skip", str(exc)
    except pytest.fail.Exception as exc:
        return "fail", str(exc)


def test_missing_shared_data_skips_but_fails_under_ci(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.delenv("CI", raising=False)
    kind, message = _outcome()
    assert kind == "skip" and "real data not found" in message and "nowhere" in message
    monkeypatch.setenv("CI", "true")
    kind, message = _outcome()
    assert kind == "fail" and "CI must run the data tests" in message
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path)
    assert _outcome() == ("ok", str(tmp_path))
