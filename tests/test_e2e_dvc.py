"""End to end: the reference project in a temporary git repository, `dvc repro` for real."""

import re
import shutil

import pytest
import yaml

from atriom.io import read_manifest
from conftest import ROOT, copy_project, mlflow_runs, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("e2e") / "project", with_src=True)
    run(["git", "init", "-q"], cwd=root)
    run(["dvc", "init", "-q"], cwd=root)
    shutil.copy2(ROOT / ".dvc" / "config", root / ".dvc" / "config")
    run(["atriom", "compose", "experiment=tiny"], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "project"], cwd=root)
    first = run(["dvc", "repro"], cwd=root)
    return root, first


def _phases(runs):
    return [r.data.tags["atriom.phase"] for r in runs]


def test_first_repro_runs_all_three_stages(repo):
    root, first = repo
    for stage in ("reservoir", "conduit", "active", "pipeline"):
        assert f"Running stage '{stage}'" in first.stdout
    assert (root / "data" / "active" / "metrics.json").is_file()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"reservoir", "conduit", "active", "pipeline"}
    assert set(lock["stages"]["active"]["params"]["params.yaml"]) == {"seed", "active"}
    assert set(lock["stages"]["reservoir"]["params"]["params.yaml"]) == {
        "seed",
        "model",
        "reservoir",
    }
    assert set(lock["stages"]["conduit"]["params"]["params.yaml"]) == {"conduit"}
    outs = {o["path"] for o in lock["stages"]["active"]["outs"]}
    assert {"data/active/runs", "data/active/metrics.json", "data/active/history.csv"} <= outs


def test_three_finished_runs_tagged_and_linked(repo):
    root, _ = repo
    runs = mlflow_runs(root)
    assert _phases(runs) == ["reservoir", "conduit", "active", "pipeline"]
    by_phase = {r.data.tags["atriom.phase"]: r for r in runs[:3]}
    pipeline = runs[3]
    assert pipeline.info.status == "FINISHED"
    for phase, r in by_phase.items():
        assert r.data.tags["mlflow.parentRunId"] == pipeline.info.run_id
        assert r.info.status == "FINISHED"
        assert r.data.tags["atriom.dvc.stage"] == phase
        assert r.data.tags["atriom.invoked_by"] == "dvc"
        assert len(r.data.tags["atriom.git.commit"]) == 40
        assert r.data.tags["atriom.git.dirty"] == "false"  # dvc.lock churn is not dirt
        assert read_manifest(root / "data" / phase)["mlflow_run_id"] == r.info.run_id
    assert (
        by_phase["conduit"].data.tags["atriom.upstream.reservoir"]
        == by_phase["reservoir"].info.run_id
    )
    assert (
        by_phase["active"].data.tags["atriom.upstream.conduit"] == by_phase["conduit"].info.run_id
    )


def test_second_repro_is_a_no_op(repo):
    root, _ = repo
    before = len(mlflow_runs(root))
    second = run(["dvc", "repro"], cwd=root)
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    assert len(mlflow_runs(root)) == before
    assert (
        run(["dvc", "status"], cwd=root)
        .stdout.strip()
        .endswith("Data and pipelines are up to date.")
    )


def test_active_param_change_reruns_only_active(repo):
    root, _ = repo
    before = mlflow_runs(root)
    # The way a user changes a default: edit conf/, re-compose params.yaml.
    conf = root / "conf" / "active" / "default.yaml"
    text, changed = re.subn(r"(?m)^lr: .*$", "lr: 1.0e-4", conf.read_text())
    assert changed == 1
    conf.write_text(text)
    run(["atriom", "compose", "experiment=tiny"], cwd=root)
    third = run(["dvc", "repro"], cwd=root)
    assert "Running stage 'active'" in third.stdout
    assert (
        "Running stage 'reservoir'" not in third.stdout
        and "Running stage 'conduit'" not in third.stdout
    )
    new = mlflow_runs(root)[len(before) :]
    assert _phases(new) == ["active", "pipeline"]
    assert new[0].data.params["active.lr"] == "0.0001"
    assert new[0].data.tags["atriom.git.dirty"] == "true"
