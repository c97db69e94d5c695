"""Experiments: widgets, sweeps, pipeline parent runs in MLflow, comparison, notebook, browser."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from atriom.config import compose
from atriom.errors import ConfigError
from atriom.sweep import trials
from atriom.widgets import TuningPanel, schema_type
from conftest import BIN, ROOT, clean_env, copy_project, mlflow_runs, run

CHROMIUM = Path("/usr/bin/chromium")


# -- widgets (no browser, no kernel) -------------------------------------------------------------


def test_schema_drives_the_widget_kinds():
    assert schema_type("active.lr") is float
    assert schema_type("active.epochs") is int
    assert schema_type("active.registry.enabled") is bool
    with pytest.raises(ConfigError, match=r"active\.lrr"):
        schema_type("active.lrr")
    panel = TuningPanel(ROOT)
    assert panel.specs["active.lr"]["kind"] == "float" and panel.specs["active.lr"]["log"]
    assert panel.specs["active.epochs"] == {
        **panel.specs["active.epochs"],
        "kind": "int",
        "value": compose(ROOT).active.epochs,
    }
    assert panel.specs["active/peft"]["options"] == ["dora", "full", "ia3", "lora"]
    assert panel.specs["active/peft"]["value"] == "lora"
    assert panel.specs["active/curriculum"]["value"] == "none"


def test_changed_values_become_overrides():
    panel = TuningPanel(ROOT)
    assert panel.overrides() == []
    panel.set("active.lr", 3e-4)
    panel.set("active/peft", "dora")
    panel.set("active.epochs", compose(ROOT).active.epochs)  # unchanged: no override
    assert panel.overrides() == ["active/peft=dora", "active.lr=0.0003"]
    assert panel.command(["experiment=tiny"])[-6:] == [
        "-S",
        "experiment=tiny",
        "-S",
        "active/peft=dora",
        "-S",
        "active.lr=0.0003",
    ]
    with pytest.raises(ConfigError, match="not one of"):
        panel.set("active/peft", "adapter")
    with pytest.raises(ConfigError, match="outside"):
        panel.set("active.epochs", 1000)


def test_the_widgets_drive_the_same_values():
    import ipywidgets

    panel = TuningPanel(ROOT)
    box = panel.widget()
    controls = {
        c.description: c
        for c in box.children
        if hasattr(c, "description") and c.description in panel.specs
    }
    assert isinstance(controls["active.lr"], ipywidgets.FloatLogSlider)
    assert isinstance(controls["active/peft"], ipywidgets.Dropdown)
    assert isinstance(controls["active.epochs"], ipywidgets.IntSlider)
    controls["active/peft"].value = "ia3"
    controls["active.epochs"].value = 7
    assert panel.overrides() == ["active/peft=ia3", "active.epochs=7"]
    preview = next(c for c in box.children if isinstance(c, ipywidgets.HTML))
    assert "-S active/peft=ia3 -S active.epochs=7" in preview.value


def test_sweep_trials_grid_and_random_search():
    grid = trials(["active.lr=1e-4,3e-4", "active/peft=choice(lora,dora)", "seed=1"])
    assert len(grid) == 4 and all("seed=1" in t for t in grid)
    assert {t[2] for t in grid} == {"active/peft=lora", "active/peft=dora"}
    assert trials(["active.peft.r=range(4,13,4)"]) == [
        ["active.peft.r=4"],
        ["active.peft.r=8"],
        ["active.peft.r=12"],
    ]
    draws = trials(["active.lr=tag(log,interval(1e-5,1e-2))"], samples=20, seed=3)
    values = [float(t[0].split("=")[1]) for t in draws]
    assert all(1e-5 <= v <= 1e-2 for v in values) and len(set(values)) == 20
    assert draws == trials(["active.lr=tag(log,interval(1e-5,1e-2))"], samples=20, seed=3)
    with pytest.raises(ConfigError, match="--samples"):
        trials(["active.lr=interval(0.1,0.2)"])


# -- experiments end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A project on the tiny profile (as its default), in git, after `dvc repro` and two `dvc exp run`s."""
    root = copy_project(tmp_path_factory.mktemp("lab") / "project", with_src=True)
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("  - experiment: null", "  - experiment: tiny"))
    run(["atriom", "compose"], cwd=root)
    run(["git", "init", "-q"], cwd=root)
    run(["dvc", "init", "-q"], cwd=root)
    shutil.copy2(ROOT / ".dvc" / "config", root / ".dvc" / "config")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "lab"], cwd=root)
    logs = [run(["dvc", "repro"], cwd=root)]
    logs.append(run(["dvc", "exp", "run", "-n", "lr-low", "-S", "active.lr=0.001"], cwd=root))
    logs.append(run(["dvc", "exp", "run", "-n", "rank-4", "-S", "active.peft.r=4"], cwd=root))
    return root, logs


def _by_phase(root, phase):
    return [r for r in mlflow_runs(root) if r.data.tags.get("atriom.phase") == phase]


@pytest.mark.slow
def test_each_repro_and_experiment_is_one_pipeline_run_over_its_stage_runs(lab):
    root, logs = lab
    pipelines = _by_phase(root, "pipeline")
    assert len(pipelines) == 3 and {p.info.status for p in pipelines} == {"FINISHED"}
    first, *experiments = pipelines
    assert "atriom.dvc.experiment" not in first.data.tags
    assert [p.data.tags["atriom.dvc.experiment"] for p in experiments] == ["lr-low", "rank-4"]
    for parent in pipelines:
        tags = parent.data.tags
        assert len(tags["atriom.git.commit"]) == 40 and len(tags["atriom.dvc.lock.digest"]) == 64
        for phase in ("reservoir", "conduit", "active"):
            assert tags[f"atriom.stage.{phase}.run_id"]
    # The baseline ran everything; the experiments only retrained: the data stages are the
    # baseline's runs, referenced as cached.
    for phase in ("reservoir", "conduit"):
        assert first.data.tags[f"atriom.stage.{phase}.cached"] == "false"
        for parent in experiments:
            assert parent.data.tags[f"atriom.stage.{phase}.cached"] == "true"
            assert (
                parent.data.tags[f"atriom.stage.{phase}.run_id"]
                == first.data.tags[f"atriom.stage.{phase}.run_id"]
            )
    actives = {r.info.run_id: r for r in _by_phase(root, "active")}
    for parent in pipelines:
        child = actives[parent.data.tags["atriom.stage.active.run_id"]]
        assert parent.data.tags["atriom.stage.active.cached"] == "false"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert parent.data.params["active.lr"] == child.data.params["active.lr"]
        assert parent.data.metrics["test_accuracy"] == child.data.metrics["test_accuracy"]
    assert [r.info.run_name for r in experiments] == ["pipeline-lr-low", "pipeline-rank-4"]
    assert (
        "Running stage 'reservoir'" not in logs[1].stdout
        and "Running stage 'pipeline'" in logs[1].stdout
    )
    # A no-op repro stays a no-op, pipeline stage included.
    assert "Running stage" not in run(["dvc", "repro"], cwd=root).stdout


@pytest.mark.slow
def test_system_metrics_are_sampled(lab):
    root, _ = lab
    active = _by_phase(root, "active")[0]
    assert any(name.startswith("system/cpu_utilization") for name in active.data.metrics)


@pytest.mark.slow
def test_compare_shows_the_params_that_differ_and_the_metrics(lab):
    root, _ = lab
    out = run(["atriom", "compare", "--last", "3"], cwd=root, COLUMNS="250").stdout
    for needle in ("active.lr", "active.peft.r", "test_accuracy", "lr-low", "rank-4", "pipeline"):
        assert needle in out, needle
    assert "active.epochs" not in out  # the same everywhere: not a differing param


@pytest.mark.slow
def test_a_two_point_sweep_runs_as_queued_dvc_experiments(lab):
    root, _ = lab
    out = run(["atriom", "sweep", "active.lr=0.0005,0.003", "--name", "sw"], cwd=root, timeout=1500)
    assert (
        "queued sw-1: active.lr=0.0005" in out.stdout
        and "queued sw-2: active.lr=0.003" in out.stdout
    )
    shown = run(["dvc", "exp", "show", "--json"], cwd=root).stdout
    assert '"sw-1"' in shown and '"sw-2"' in shown
    # Queued experiments ran in temporary workspaces; their runs still reached this project's MLflow store.
    pipelines = {p.data.tags.get("atriom.dvc.experiment"): p for p in _by_phase(root, "pipeline")}
    assert {"sw-1", "sw-2"} <= set(pipelines)
    assert {pipelines[name].data.params["active.lr"] for name in ("sw-1", "sw-2")} == {
        "0.0005",
        "0.003",
    }


@pytest.mark.slow
def test_the_tuning_notebook_runs_headless(lab, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    root, _ = lab
    monkeypatch.setenv("ATRIOM_NOTEBOOK_AUTORUN", "1")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    before = len(_by_phase(root, "pipeline"))
    notebook = nbformat.read(root / "notebooks" / "tune.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(root / "notebooks")}},
    ).execute()
    text = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert "overrides: ['active/peft=dora', 'active.lr=0.001']" in text
    assert "application/vnd.jupyter.widget-view+json" in text  # the panel rendered
    assert "image/png" in text  # the comparison plot
    pipelines = _by_phase(root, "pipeline")
    assert (
        len(pipelines) == before + 1 and pipelines[-1].data.params["active.peft.method"] == "dora"
    )


# -- the MLflow UI in a real browser --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_mlflow_ui_shows_both_runs_and_what_differs(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    root, _ = lab
    runs = {r.data.tags.get("atriom.dvc.experiment"): r for r in _by_phase(root, "active")}
    a, b = runs["lr-low"], runs["rank-4"]
    port = _free_port()
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read().strip() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(
                f"mlflow server did not come up: {server.stderr.read()[-2000:] if server.poll() is not None else ''}"
            )
        flags = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=flags)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The experiment page: one pipeline run per repro/experiment (training runs nest under them).
            page.goto(
                f"{url}/#/experiments/{a.info.experiment_id}/runs?workflowType=machine_learning"
            )
            for name in ("pipeline-lr-low", "pipeline-rank-4"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "experiment.png"), full_page=True)
            query = urllib.parse.urlencode(
                {
                    "runs": json.dumps([a.info.run_id, b.info.run_id]),
                    "experiments": json.dumps([a.info.experiment_id]),
                }
            )
            page.goto(f"{url}/#/compare-runs?{query}")
            page.get_by_text("Run details").first.wait_for(timeout=60_000)
            page.get_by_text("test_accuracy").first.wait_for(timeout=60_000)
            body = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "compare-top.png"))
            # The parameter and metric tables, differing rows only.
            page.get_by_text("Show diff only").first.click()
            page.get_by_text("active.peft.r", exact=True).last.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "compare.png"))
            browser.close()
        for needle in (
            a.info.run_name,
            b.info.run_name,
            "active.lr",
            "active.peft.r",
            "test_accuracy",
            a.data.params["active.lr"],
            b.data.params["active.lr"],
        ):
            assert needle in body, needle
        assert (tmp_path / "compare.png").stat().st_size > 10_000
        if os.environ.get(
            "ATRIOM_SCREENSHOT_DIR"
        ):  # keep the pictures (docs/experiments.md uses one)
            for name in ("experiment.png", "compare-top.png", "compare.png"):
                shutil.copy2(tmp_path / name, Path(os.environ["ATRIOM_SCREENSHOT_DIR"]) / name)
    finally:
        server.terminate()
        server.wait(timeout=30)
