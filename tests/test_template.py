"""`atriom new` / `atriom update`, the root-is-the-template guarantee, workflows, pre-commit."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from atriom.errors import AtriomError
from atriom.scaffold import TEMPLATE_DIR, new_project
from conftest import BIN, ROOT, run

#: Rendered files that legitimately differ from the root: the root's README and pyproject
#: are the library's, the lock records whatever environment renders, the answers file is
#: the generated project's own.
NOT_COMPARED = {"README.md", "pyproject.toml", "requirements.lock", ".copier-answers.yml"}
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
NON_DEFAULT = {
    "project_name": "Vision Lab",
    "dataset": "folder",
    "python_version": "3.10",
    "licence": "MIT",
    "include_ci": False,
    "include_pre_commit": True,
}


@pytest.fixture(autouse=True)
def _template_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATRIOM_TEMPLATE_CACHE", str(tmp_path / "template-cache"))


def _files(root):
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts
    )


def test_root_is_what_the_template_renders_with_default_answers(tmp_path):
    project = new_project(tmp_path / "p", defaults=True, git=False)
    rendered = _files(project)
    for expected in (
        "conf/config.yaml",
        "dvc.yaml",
        "params.yaml",
        "Makefile",
        ".github/workflows/ci.yml",
        "src/atriom_demo/scorers.py",
        "tests/test_project.py",
        "LICENSE",
        ".pre-commit-config.yaml",
    ):
        assert expected in rendered
    drift = [
        name
        for name in rendered
        if name not in NOT_COMPARED
        and (
            not (ROOT / name).is_file()
            or (ROOT / name).read_bytes() != (project / name).read_bytes()
        )
    ]
    assert drift == [], f"the template and the root drifted apart in: {drift}"


def test_non_default_answers_shape_the_project(tmp_path):
    project = new_project(
        tmp_path / "p",
        data={**NON_DEFAULT, "model": "huggingface", "hf_model_id": "acme/video"},
        defaults=True,
        git=False,
    )
    names = _files(project)
    assert "src/vision_lab/scorers.py" in names and not any(
        n.startswith("src/atriom_demo") for n in names
    )
    assert not any(n.startswith(".github/") for n in names)
    config = (project / "conf" / "config.yaml").read_text()
    assert (
        "- model: videomae_base" in config
        and "repo_id: acme/video" in config
        and "root: data/raw/videos" in config
    )
    assert "- dataset: folder" in (project / "conf" / "reservoir" / "default.yaml").read_text()
    assert (
        "atriom_demo"
        not in (project / "conf" / "active" / "curriculum" / "motion_energy.yaml").read_text()
    )
    assert (project / "LICENSE").read_text().startswith("MIT License")
    assert 'requires-python = ">=3.10"' in (project / "pyproject.toml").read_text()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["project"]["name"] == "Vision Lab" and params["model"]["repo_id"] == "acme/video"
    assert params["reservoir"]["dataset"]["_target_"] == "atriom.reservoir.sources.FolderVideos"


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"package_name": "9lives"}, "identifier"),
        ({"package_name": "atriom"}, "shadow"),
        ({"project_name": "a/b"}, "slash"),
        ({"hf_model_id": "nope", "model": "huggingface"}, "org/name"),
        ({"licence": "WTFPL"}, ""),
    ],
)
def test_invalid_answers_are_refused(tmp_path, answers, message):
    with pytest.raises((AtriomError, ValueError)) as err:
        new_project(tmp_path / "p", data=answers, defaults=True, git=False)
    assert message.lower() in str(err.value).lower()


def test_refuses_a_non_empty_target(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    with pytest.raises(AtriomError, match="not empty"):
        new_project(tmp_path / "p", defaults=True, git=False)
    assert (tmp_path / "p" / "notes.txt").read_text() == "mine"


def test_cli_new_with_answers_file_inits_git_and_dvc(tmp_path):
    answers = tmp_path / "answers.yml"
    answers.write_text("project_name: clips\nlicence: Proprietary\n")
    out = run(
        [
            "atriom",
            "new",
            str(tmp_path / "clips"),
            "--defaults",
            "--answers",
            str(answers),
            "-d",
            "include_ci=false",
        ],
        cwd=tmp_path,
        ATRIOM_TEMPLATE_CACHE=str(tmp_path / "cache"),
    )
    project = tmp_path / "clips"
    assert "Next steps" in out.stdout and "make repro" in out.stdout
    assert not (project / "LICENSE").exists() and not (project / ".github").exists()
    assert (project / "src" / "clips" / "scorers.py").is_file()
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=project, capture_output=True, text=True
    ).stdout
    assert "New ATRIOM project" in log
    assert "analytics = false" in (project / ".dvc" / "config").read_text()
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
        ).stdout
        == ""
    )


# -- workflows -------------------------------------------------------------------------------


def _workflow_dirs(tmp_path):
    project = new_project(tmp_path / "p", defaults=True, git=False)
    return [ROOT / ".github" / "workflows", project / ".github" / "workflows"]


def test_actionlint_and_zizmor_find_nothing(tmp_path):
    actionlint, zizmor = (shutil.which(tool, path=str(BIN)) for tool in ("actionlint", "zizmor"))
    assert actionlint and zizmor, "make install puts actionlint and zizmor (dev extras) in the venv"
    for workflows in _workflow_dirs(tmp_path):
        files = sorted(str(p) for p in workflows.glob("*.yml"))
        assert len(files) == 2
        lint = subprocess.run([actionlint, *files], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        audit = subprocess.run(
            [zizmor, "--offline", str(workflows)], capture_output=True, text=True
        )
        assert audit.returncode == 0 and "No findings to report" in audit.stdout + audit.stderr, (
            audit.stdout + audit.stderr
        )


def test_workflows_are_hardened():
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        text = path.read_text()
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "pull_request_target" not in text
        for name, job in workflow["jobs"].items():
            assert set(job.get("permissions", {})) <= {"pull-requests"}, (path.name, name)
            for step in job["steps"]:
                assert "${{ github.event" not in step.get("run", ""), (path.name, name, step)
                if "uses" in step:
                    assert SHA_PIN.match(step["uses"]), step["uses"]
                    if step["uses"].startswith("actions/checkout@"):
                        assert step["with"]["persist-credentials"] is False
        for line in text.splitlines():
            if "uses:" in line:
                assert re.search(r"@[0-9a-f]{40} # v\d", line), line
        assert "make " in text  # the steps call Makefile targets


# -- update, and a generated project end to end ---------------------------------------------------


def _template_repo(tmp_path):
    repo = tmp_path / "template-repo"
    shutil.copytree(
        TEMPLATE_DIR, repo, symlinks=False, ignore=shutil.ignore_patterns("__pycache__")
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=repo, check=True)
    subprocess.run([*git, "tag", "v1.0.0"], cwd=repo, check=True)
    return repo, git


@pytest.mark.slow
def test_a_template_change_reaches_a_project_through_update(tmp_path):
    repo, git = _template_repo(tmp_path)
    project = new_project(tmp_path / "p", defaults=True, template=str(repo))
    # The project edits a file of its own...
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nOur notes.\n")
    subprocess.run([*git, "commit", "-qam", "notes"], cwd=project, check=True)
    # ...the template changes another one and releases v2.
    makefile = repo / "Makefile"
    makefile.write_text(
        makefile.read_text().replace(
            "make repro      install (if needed)", "make repro      (v2) install (if needed)"
        )
    )
    (repo / "conf" / "experiment" / "smoke.yaml").write_text(
        "# @package _global_\nactive:\n  epochs: 1\n"
    )
    subprocess.run([*git, "commit", "-qam", "v2"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "v2 profile"], cwd=repo, check=True)
    subprocess.run([*git, "tag", "v2.0.0"], cwd=repo, check=True)

    out = run(["atriom", "update", str(project)], cwd=tmp_path)
    assert "updated" in out.stdout
    assert "(v2) install" in (project / "Makefile").read_text()
    assert (project / "conf" / "experiment" / "smoke.yaml").is_file()
    assert "Our notes." in readme.read_text()
    assert "_commit: v2.0.0" in (project / ".copier-answers.yml").read_text()


@pytest.mark.slow
def test_generated_project_passes_its_tests_repro_and_pre_commit(tmp_path):
    from atriom.reservoir.synthetic import SyntheticVideos

    project = new_project(tmp_path / "vision-lab", data=NON_DEFAULT, defaults=True)
    SyntheticVideos(
        classes=["linear", "circular", "jitter"], clips_per_class=14, num_frames=16, size=64, fps=8
    ).collect(project / "data" / "raw", seed=3)  # -> data/raw/videos/<label>/*.mp4
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "-e",
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    try:
        tests = run(
            [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider"],
            cwd=project,
            check=False,
        )
        assert tests.returncode == 0, tests.stdout[-3000:]
        repro = run(["dvc", "repro"], cwd=project, check=False, timeout=1200)
        assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
        metrics = yaml.safe_load((project / "data" / "active" / "metrics.json").read_text())
        assert metrics["test"]["n"] > 0
        lint = run(["pre-commit", "run", "--all-files"], cwd=project, check=False, timeout=600)
        assert lint.returncode == 0, lint.stdout[-3000:]
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "vision-lab"],
            capture_output=True,
        )


@pytest.mark.slow
def test_pre_commit_passes_on_the_repository(tmp_path):
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    copy = tmp_path / "repo"
    for name in listed:
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name, follow_symlinks=False)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    lint = run(["pre-commit", "run", "--all-files"], cwd=copy, check=False, timeout=600)
    assert lint.returncode == 0, lint.stdout[-3000:]
