import json

import pytest

from atriom.errors import UpstreamError
from atriom.io import (
    Manifest,
    atomic_write_text,
    read_manifest,
    sha256_file,
    staged_dir,
    write_manifest,
)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert path.read_text() == "hello"
    atomic_write_text(path, "again")
    assert path.read_text() == "again"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]


def test_staged_dir_commits_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_dir(target) as staging:
        (staging / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()
    assert (target / "new.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_dir_keeps_previous_outputs_on_failure(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_manifest_lists_files_and_digest_is_content_only(tmp_path):
    for name in ("a", "b"):
        d = tmp_path / name
        (d / "sub").mkdir(parents=True)
        (d / "x.txt").write_text("x")
        (d / "sub" / "y.txt").write_text("y")
        write_manifest(d, Manifest(phase="p", mlflow_run_id=f"run-{name}", params_digest="d"))
    a = read_manifest(tmp_path / "a")
    b = read_manifest(tmp_path / "b")
    assert [f["path"] for f in a["files"]] == ["sub/y.txt", "x.txt"]
    assert a["files"][1]["sha256"] == sha256_file(tmp_path / "a" / "x.txt")
    assert a["digest"] == b["digest"] and a["mlflow_run_id"] != b["mlflow_run_id"]
    (tmp_path / "b" / "x.txt").write_text("changed")
    write_manifest(tmp_path / "b", Manifest(phase="p", mlflow_run_id="r", params_digest="d"))
    assert read_manifest(tmp_path / "b")["digest"] != a["digest"]


def test_missing_or_foreign_manifest_says_what_to_run(tmp_path):
    with pytest.raises(UpstreamError, match="atriom run reservoir"):
        read_manifest(tmp_path, "reservoir")
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(UpstreamError, match="schema"):
        read_manifest(tmp_path, "reservoir")


def test_commit_keeps_entries_the_stage_did_not_produce(tmp_path):
    target = tmp_path / "out"
    (target / "runs" / "run_old").mkdir(parents=True)
    (target / ".gitignore").write_text("/runs\n")
    (target / "manifest.json").write_text("{}")
    with staged_dir(target) as staging:
        (staging / "runs" / "run_new").mkdir(parents=True)
        (staging / "manifest.json").write_text('{"new": true}')
    assert (target / ".gitignore").read_text() == "/runs\n"
    assert [p.name for p in (target / "runs").iterdir()] == ["run_new"]
    assert json.loads((target / "manifest.json").read_text()) == {"new": True}
