import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from atriom.tracking import flatten, stage_run
from conftest import clean_env, copy_project, mlflow_runs


def _open(root, **kw):
    return stage_run(
        root=root,
        experiment="exp",
        phase=kw.pop("phase", "conduit"),
        params={"seed": 1, "conduit": {"split": {"train": 0.5}, "sampler": {"num_frames": 8}}},
        params_digest="abc",
        upstream=kw.pop("upstream", {"reservoir": "r123"}),
    )


def test_flatten_gives_dotted_stable_names():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": {},
    }


def test_finished_run_has_tags_params_and_lineage(tmp_path):
    with _open(tmp_path) as run:
        run.log_metrics({"m": 1.0})
    (only,) = mlflow_runs(tmp_path)
    assert only.info.run_id == run.run_id
    assert only.info.status == "FINISHED"
    tags = only.data.tags
    assert tags["atriom.phase"] == "conduit"
    assert tags["atriom.params.digest"] == "abc"
    assert tags["atriom.upstream.reservoir"] == "r123"
    assert tags["atriom.git.commit"] == "none" and tags["atriom.git.dirty"] == "none"
    assert tags["atriom.dvc.stage"] == "conduit"
    assert only.data.params["conduit.split.train"] == "0.5"
    assert only.data.params["seed"] == "1"
    assert only.data.metrics["m"] == 1.0


def test_git_commit_and_dirty_flag(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(["git", "add", "f.txt"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=tmp_path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    with _open(tmp_path):
        pass
    (tmp_path / "f.txt").write_text("b")
    with _open(tmp_path):
        pass
    first, second = mlflow_runs(tmp_path)
    assert first.data.tags["atriom.git.commit"] == head
    assert first.data.tags["atriom.git.dirty"] == "false"
    assert second.data.tags["atriom.git.dirty"] == "true"


def test_failing_stage_ends_failed(tmp_path):
    with pytest.raises(ValueError), _open(tmp_path):
        raise ValueError("boom")
    (only,) = mlflow_runs(tmp_path)
    assert only.info.status == "FAILED"
    assert mlflow.active_run() is None


def test_failing_stage_run_is_failed_and_outputs_untouched(project):
    from atriom.errors import ConfigError
    from atriom.stage import run_stage

    run_stage("reservoir", root=project)
    before = (project / "data" / "reservoir" / "manifest.json").read_text()
    with pytest.raises(ConfigError, match="bogus"):
        run_stage("reservoir", ["reservoir.dataset.classes=[linear,bogus]"], root=project)
    statuses = [r.info.status for r in mlflow_runs(project)]
    assert statuses == ["FINISHED", "FAILED"]
    assert (project / "data" / "reservoir" / "manifest.json").read_text() == before
    assert not [p for p in (project / "data").iterdir() if ".staging-" in p.name]


def test_sigterm_ends_run_killed_and_leaves_no_staging(tmp_path):
    root = copy_project(tmp_path / "p")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atriom",
            "run",
            "reservoir",
            "reservoir.dataset.clips_per_class=400",
        ],
        cwd=root,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        staging = [
            p for p in (root / "data").glob(".reservoir.staging-*") if (p / "videos").exists()
        ]
        if staging:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the stage never started writing videos")
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    (only,) = mlflow_runs(root)
    assert only.info.status == "KILLED"
    assert not list((root / "data").glob(".reservoir.staging-*"))
    assert not (root / "data" / "reservoir" / "manifest.json").exists()
