"""Reservoir: environment report, redaction, drift, sources, validation, models, the stage."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from atriom.errors import DataError, ModelError
from atriom.io import read_manifest
from atriom.reservoir.drift import (
    EnvironmentPolicyError,
    apply_policies,
    drift_report,
    read_lock,
    render_lock,
)
from atriom.reservoir.environment import (
    REDACTED,
    environment_variables,
    installed_packages,
    parse_pip_check,
)
from atriom.reservoir.sources import AnnotatedVideos, FolderVideos
from atriom.reservoir.synthetic import PATTERNS, render_clip
from atriom.reservoir.validate import enforce, validate_clips
from atriom.stage import run_stage
from atriom.video import write_video
from conftest import clean_env, compose_tiny, mlflow_runs, run

SENTINELS = {
    "HF_TOKEN": "SENTINEL-hf-7f3a",
    "AWS_SECRET_ACCESS_KEY": "SENTINEL-aws-91c2",
    "MLFLOW_TRACKING_PASSWORD": "SENTINEL-mlflow-5d0e",
}
VCS_SENTINEL = "SENTINEL-vcs-b44d"
REMOTE_SENTINEL = "SENTINEL-remote-0a9f"


def _clip(path, pattern="linear", seed=0, frames=12):
    rng = np.random.default_rng(seed)
    arr = render_clip(
        rng,
        PATTERNS[pattern],
        frames=frames,
        size=32,
        speed=2.0,
        radius=4,
        noise=0.0,
        distractors=0,
    )
    return write_video(path, arr, fps=8)


# -- environment -----------------------------------------------------------------------------


def test_environment_variables_allowlist_and_redaction():
    environ = {
        "HF_TOKEN": "secret",
        "OMP_NUM_THREADS": "2",
        "MLFLOW_TRACKING_URI": "https://user:pw@mlflow.example.com",
        "UNLISTED": "x",
    }
    got = environment_variables(
        ["HF_TOKEN", "OMP_NUM_THREADS", "MLFLOW_TRACKING_URI", "UNSET"], environ
    )
    assert got == {
        "HF_TOKEN": REDACTED,
        "OMP_NUM_THREADS": "2",
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
    }


def _fake_vcs_dist(site):
    info = site / "leakypkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leakypkg\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    url = f"https://user:{VCS_SENTINEL}@git.example.com/org/leakypkg.git"
    (info / "direct_url.json").write_text(
        json.dumps({"url": url, "vcs_info": {"vcs": "git", "commit_id": "abc123"}})
    )
    return site


def test_vcs_source_is_recorded_without_credentials(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_fake_vcs_dist(tmp_path / "site")))
    (pkg,) = [p for p in installed_packages() if p["name"] == "leakypkg"]
    assert pkg["source"] == "git+https://git.example.com/org/leakypkg.git@abc123"
    assert pkg["installer"] == "pip" and pkg["editable"] is False


def test_pip_check_lines_are_parsed():
    text = (
        "foo 1.0 requires bar, which is not installed.\n"
        "baz 2.0 has requirement qux>=3, but you have qux 2.5.\n"
        "odd line\n"
    )
    a, b, c = parse_pip_check(text)
    assert (a["package"], a["requires"], a["found"]) == ("foo", "bar", None)
    assert (b["package"], b["requires"], b["found"]) == ("baz", "qux>=3", "2.5")
    assert c["line"] == "odd line" and parse_pip_check("No broken requirements found.\n") == []


# -- drift -----------------------------------------------------------------------------------


def _pkgs(**versions):
    return [
        {"name": n.replace("_", "-"), "version": v, "editable": False} for n, v in versions.items()
    ]


def test_lock_round_trip_leaves_out_editable_installs(tmp_path):
    packages = [
        *_pkgs(numpy="2.0", torch="2.13.0"),
        {"name": "atriom", "version": "0.1.0", "editable": True},
    ]
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        render_lock(packages)
        + "-e .\n# comment\nunpinned\nFoo_Bar[extra]==1.2 ; python_version>'3'\n"
    )
    assert read_lock(lock) == {"numpy": "2.0", "torch": "2.13.0", "foo-bar": "1.2"}


def test_drift_against_lock_and_fabricated_previous_report(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(render_lock(_pkgs(numpy="2.0", torch="2.13.0", six="1.16")))
    previous = {
        "timestamp": "20260101_000000",
        "packages": _pkgs(numpy="1.26", torch="2.13.0", attrs="23.0"),
    }
    current = _pkgs(numpy="2.0", torch="2.14.0", pandas="3.0")
    drift = drift_report(current, lock, previous)
    assert drift["lock"] == {
        "added": {"pandas": "3.0"},
        "removed": {"six": "1.16"},
        "changed": {"torch": {"from": "2.13.0", "to": "2.14.0"}},
        "total": 3,
    }
    assert drift["previous"]["changed"] == {
        "numpy": {"from": "1.26", "to": "2.0"},
        "torch": {"from": "2.13.0", "to": "2.14.0"},
    }
    assert (
        drift["previous"]["removed"] == {"attrs": "23.0"}
        and drift["previous_report"] == "20260101_000000"
    )


def test_drift_and_conflict_policies(tmp_path, caplog):
    lock = tmp_path / "requirements.lock"
    lock.write_text(render_lock(_pkgs(numpy="2.0")))
    drift = drift_report(_pkgs(numpy="2.1"), lock, None)
    conflicts = [{"line": "foo 1.0 requires bar, which is not installed."}]
    log = logging.getLogger("test.policy")
    with caplog.at_level(logging.WARNING):
        apply_policies(drift, conflicts, {"conflicts": "warn", "drift": "warn"}, log)
    assert "1 changed: numpy" in caplog.text and "requires bar" in caplog.text
    with pytest.raises(EnvironmentPolicyError, match=r"drifted.*numpy.*make lock"):
        apply_policies(drift, [], {"conflicts": "warn", "drift": "fail"}, log)
    with pytest.raises(EnvironmentPolicyError, match="package conflict"):
        apply_policies(drift, conflicts, {"conflicts": "fail", "drift": "warn"}, log)
    clean = drift_report(_pkgs(numpy="2.0"), lock, None)
    apply_policies(clean, [], {"conflicts": "fail", "drift": "fail"}, log)


# -- sources and validation --------------------------------------------------------------------


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "videos"
    for label, pattern in (("left", "linear"), ("round", "circular")):
        for i in range(2):
            _clip(root / label / f"{label}{i}.mp4", pattern, seed=i)
    (root / "left" / "notes.txt").write_text("ignored: not a video extension")
    return root


def test_folder_source_labels_by_subfolder(video_folder, tmp_path):
    clips = FolderVideos(root=str(video_folder)).collect(tmp_path / "out", seed=0, root=tmp_path)
    assert sorted((c.path.name, c.label) for c in clips) == [
        ("left0.mp4", "left"),
        ("left1.mp4", "left"),
        ("round0.mp4", "round"),
        ("round1.mp4", "round"),
    ]
    with pytest.raises(DataError, match="not a directory"):
        FolderVideos(root="nope").collect(tmp_path / "out", seed=0, root=tmp_path)


def test_annotations_csv_and_jsonl(video_folder, tmp_path):
    csv_file = tmp_path / "clips.csv"
    csv_file.write_text(
        "path,label,start,end\n"
        "videos/left/left0.mp4,left,0,1.0\n"
        "videos/round/round0.mp4,round,,\n"
        "videos/round/round1.mp4,,0,1\n"
        "videos/left/left1.mp4,left,2,1\n"
    )
    clips = AnnotatedVideos(file="clips.csv").collect(tmp_path / "out", seed=0, root=tmp_path)
    assert [(c.label, c.start, c.end, c.problem) for c in clips[:2]] == [
        ("left", 0.0, 1.0, None),
        ("round", None, None, None),
    ]
    assert "line 4: needs both path and label" in clips[2].problem
    assert "line 5: need 0 <= start < end" in clips[3].problem
    jsonl = tmp_path / "clips.jsonl"
    jsonl.write_text('{"path": "videos/left/left1.mp4", "label": "left", "start": 0.5}\nnot json\n')
    a, b = AnnotatedVideos(file="clips.jsonl").collect(tmp_path / "out", seed=0, root=tmp_path)
    assert (a.label, a.start, a.end, a.problem) == ("left", 0.5, None, None)
    assert "line 2: not JSON" in b.problem


def _bad_folder(root):
    good = _clip(root / "left" / "good.mp4")
    _clip(root / "round" / "good2.mp4", "circular")
    (root / "left" / "empty.mp4").write_bytes(b"")
    (root / "left" / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "round" / "text.mp4").write_text("this is not a video")
    (root / "round" / "copy.mp4").write_bytes(good.read_bytes())
    return root


def test_validation_quarantines_each_bad_kind_with_a_reason(tmp_path, caplog):
    root = _bad_folder(tmp_path / "videos")
    clips = FolderVideos(root=str(root)).collect(tmp_path, seed=0, root=tmp_path)
    result = validate_clips(clips, classes=None, describe=lambda p: p.name)
    reasons = {q["path"]: q["reason"] for q in result.quarantine}
    assert reasons.keys() == {"empty.mp4", "truncated.mp4", "text.mp4", "copy.mp4"}
    assert reasons["empty.mp4"] == "empty file (0 bytes)"
    assert reasons["truncated.mp4"].startswith(("not a readable video", "damaged or truncated"))
    assert reasons["text.mp4"].startswith("not a readable video")
    assert reasons["copy.mp4"] == "duplicate of good.mp4 (same content)"
    assert sorted(c.path.name for c, _, _ in result.good) == ["good.mp4", "good2.mp4"]
    with caplog.at_level(logging.WARNING):
        enforce(result, "skip", logging.getLogger("t"))
    assert "quarantined 4 bad file(s)" in caplog.text
    with pytest.raises(DataError) as err:
        enforce(result, "fail", logging.getLogger("t"))
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in reasons)


def test_labels_outside_the_class_set_are_quarantined(video_folder, tmp_path):
    clips = FolderVideos(root=str(video_folder)).collect(tmp_path, seed=0, root=tmp_path)
    result = validate_clips(clips, classes=["left"], describe=lambda p: p.name)
    assert {q["path"] for q in result.quarantine} == {"round0.mp4", "round1.mp4"}
    assert "not one of the configured classes" in result.quarantine[0]["reason"]


# -- models ------------------------------------------------------------------------------------


def _save_tiny_model(path, num_frames=8):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    config = VideoMAEConfig(
        image_size=32,
        patch_size=16,
        num_frames=num_frames,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    VideoMAEForVideoClassification(config).save_pretrained(path)
    return path


def _hf_cache(
    cache, repo_id="acme/tiny-videomae", commit="0123456789abcdef0123456789abcdef01234567"
):
    """A Hugging Face cache laid out as huggingface_hub writes it (real files, made here)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    _save_tiny_model(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_hf_model_resolves_offline_from_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from atriom.reservoir.models import HuggingFaceModel

    # huggingface_hub reads HF_HUB_CACHE when first imported: set both, as a fresh process would see.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = _hf_cache(tmp_path / "hub")
    spec = HuggingFaceModel(
        family="videomae", num_frames=8, image_size=32, repo_id="acme/tiny-videomae"
    )
    collected = spec.collect(tmp_path / "out", root=tmp_path, final_dir=tmp_path / "data")
    assert collected.location == f"hf://acme/tiny-videomae@{commit}"
    assert collected.source == {
        "kind": "huggingface",
        "repo_id": "acme/tiny-videomae",
        "revision": "main",
        "commit": commit,
        "resolved": "cache",
    }
    from atriom.artifacts import model_dir

    assert model_dir({"location": collected.location}, tmp_path) == collected.path
    missing = HuggingFaceModel(
        family="videomae", num_frames=8, image_size=32, repo_id="acme/absent"
    )
    with pytest.raises(
        ModelError,
        match=r"acme/absent@main is not in the local Hugging Face cache.*huggingface-cli download",
    ):
        missing.collect(tmp_path / "out", root=tmp_path, final_dir=tmp_path / "data")


def test_model_that_does_not_match_its_config_fails_early(tmp_path):
    from atriom.reservoir.models import inspect_model

    path = _save_tiny_model(tmp_path / "m")
    spec = {
        "family": "videomae",
        "num_frames": 16,
        "image_size": 32,
        "lora_targets": ["q_proj", "value"],
    }
    with pytest.raises(ModelError) as err:
        inspect_model(path, spec)
    assert "model.num_frames=16 but the model's config says 8" in str(err.value)
    assert "['q_proj'] are not modules" in str(err.value) and "'query'" in str(err.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="does not load"):
        inspect_model(tmp_path / "broken", {**spec, "num_frames": 8, "lora_targets": []})


# -- the stage ---------------------------------------------------------------------------------


def test_stage_outputs_and_one_finished_run(project):
    out = run_stage("reservoir", root=project)
    names = {p.name for p in out.iterdir()}
    assert {
        "env.json",
        "env_packages.csv",
        "env_drift.json",
        "resources.json",
        "device_plan.json",
        "dataset.json",
        "model.json",
        "quarantine.json",
        "manifest.json",
        "config.yaml",
        "reservoir.log",
        "model",
        "videos",
    } <= names
    assert len([n for n in names if n.startswith("env_2")]) == 1
    plan = json.loads((out / "device_plan.json").read_text())
    assert (plan["device"], plan["dtype"], plan["quantization"]) == ("cpu", "fp32", "none")
    model = json.loads((out / "model.json").read_text())
    assert model["location"] == "data/reservoir/model" and model["licence"] == "Apache-2.0"
    assert (
        model["source"] == {"kind": "builtin", "name": "tiny_videomae"}
        and model["provenance"]["seed"] is not None
    )
    (only,) = mlflow_runs(project)
    assert only.info.status == "FINISHED"
    tags = only.data.tags
    assert tags["atriom.device"] == "cpu" and tags["atriom.dtype"] == "fp32"
    assert tags["atriom.dataset.digest"] == json.loads((out / "dataset.json").read_text())["digest"]
    assert only.data.params["dataset.clips_per_class.linear"] == "10"
    (dataset_input,) = only.inputs.dataset_inputs
    assert dataset_input.dataset.digest == tags["atriom.dataset.digest"][:32]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    artifacts = {a.path for a in client.list_artifacts(only.info.run_id)}
    assert {
        "env.json",
        "env_drift.json",
        "resources.json",
        "device_plan.json",
        "dataset.json",
        "model.json",
        "quarantine.json",
        "logs",
    } <= artifacts


def test_second_run_measures_drift_from_the_first_and_digests_repeat(project):
    first = run_stage("reservoir", root=project)
    digests = [
        json.loads((first / n).read_text())["digest"] for n in ("dataset.json", "model.json")
    ]
    run_stage("reservoir", root=project)
    drift = json.loads((first / "env_drift.json").read_text())
    assert drift["previous"] is not None and drift["previous"]["total"] == 0
    assert len(list(first.glob("env_2*.json"))) >= 1
    assert [
        json.loads((first / n).read_text())["digest"] for n in ("dataset.json", "model.json")
    ] == digests


def test_history_keeps_the_newest_reports(project):
    for stamp in ("20200101_000000", "20200102_000000", "20200103_000000"):
        out = project / "data" / "reservoir"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"env_{stamp}.json").write_text(json.dumps({"timestamp": stamp, "packages": []}))
    out = run_stage("reservoir", ["reservoir.env.history=2"], root=project)
    kept = sorted(p.name for p in out.glob("env_2*.json"))
    assert len(kept) == 2 and kept[0] == "env_20200103_000000.json"
    assert json.loads((out / "env_drift.json").read_text())["previous_report"] == "20200103_000000"
    assert {f["path"] for f in read_manifest(out)["files"]} >= set(kept)


def test_folder_dataset_with_bad_files_skip_then_fail(project):
    _bad_folder(project / "raw")
    for label, pattern in (("left", "linear"), ("round", "circular")):
        for i in range(12):
            _clip(project / "raw" / label / f"{label}_{i:02d}.mp4", pattern, seed=100 + i)
    compose_tiny(
        project,
        "reservoir/dataset=folder",
        "reservoir.dataset.root=raw",
        "~reservoir.dataset.clips_per_class",
    )
    out = run_stage("reservoir", root=project)
    quarantine = json.loads((out / "quarantine.json").read_text())
    reasons = {q["path"]: q["reason"] for q in quarantine["files"]}
    assert reasons.keys() == {
        "raw/left/empty.mp4",
        "raw/left/truncated.mp4",
        "raw/round/text.mp4",
        "raw/round/copy.mp4",
    }
    assert reasons["raw/left/empty.mp4"] == "empty file (0 bytes)"
    assert reasons["raw/left/truncated.mp4"].startswith("not a readable video")
    assert reasons["raw/round/text.mp4"].startswith("not a readable video")
    assert reasons["raw/round/copy.mp4"] == "duplicate of raw/left/good.mp4 (same content)"
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["counts"] == {"left": 13, "round": 13}
    assert all(c["path"].startswith("raw/") for c in dataset["clips"])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    result = run(
        ["atriom", "run", "reservoir", "reservoir.validation.on_bad_file=fail"],
        cwd=project,
        check=False,
    )
    assert result.returncode == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "4 bad file(s)" in line and all(
        name in line for name in ("empty.mp4", "truncated.mp4", "text.mp4", "copy.mp4")
    )
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert [r.info.status for r in mlflow_runs(project)][-1] == "FAILED"


@pytest.mark.slow
def test_no_sentinel_secret_reaches_outputs_logs_or_mlflow(project, tmp_path):
    site = _fake_vcs_dist(tmp_path / "site")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(
        [
            "git",
            "remote",
            "add",
            "origin",
            f"https://user:{REMOTE_SENTINEL}@github.com/org/repo.git",
        ],
        cwd=project,
        check=True,
    )
    env = clean_env(**SENTINELS, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-m", "atriom", "run", "reservoir"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((project / "data" / "reservoir" / "env.json").read_text())
    assert report["environment_variables"]["HF_TOKEN"] == REDACTED
    assert report["environment_variables"]["MLFLOW_TRACKING_PASSWORD"] == REDACTED
    assert report["git"]["remote"] == "https://github.com/org/repo.git"
    assert any(p["name"] == "leakypkg" for p in report["packages"])

    secrets = [*SENTINELS.values(), VCS_SENTINEL, REMOTE_SENTINEL]
    scanned = 0
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            data = path.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{secret} leaked into {path}"
    assert scanned > 20 and (project / "mlflow.db").is_file()
    for text in (result.stdout, result.stderr):
        assert not any(secret in text for secret in secrets)
    (only,) = mlflow_runs(project)
    everything = json.dumps([only.data.params, only.data.tags, only.data.metrics])
    assert not any(secret in everything for secret in secrets)
