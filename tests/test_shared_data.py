"""Without ../shared/data the data tests are skipped on a developer's machine but fail under CI."""

from __future__ import annotations

import pytest

import conftest


def test_missing_shared_data_skips_but_fails_under_ci(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real data not found"):
        conftest.require_shared_data()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the data tests"):
        conftest.require_shared_data()
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path)
    assert conftest.require_shared_data() == tmp_path
