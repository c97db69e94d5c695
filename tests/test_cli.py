import re
import subprocess
import sys

from conftest import clean_env, run

HEAVY = ("torch", "transformers", "peft", "mlflow", "cv2", "av", "accelerate", "pandas")


def test_help_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from atriom.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), check=True
    )
    assert "run" in out.stdout and "compose" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_version(tmp_path):
    from atriom import __version__

    out = run(["atriom", "--version"], cwd=tmp_path)
    assert out.stdout.strip() == f"atriom {__version__}"


def test_user_error_is_one_line_exit_2(tmp_path):
    out = run(["atriom", "run", "reservoir"], cwd=tmp_path, check=False)
    assert out.returncode == 2
    assert "No ATRIOM project" in out.stderr
    assert "Traceback" not in out.stderr


def test_override_typo_names_the_key(project):
    out = run(["atriom", "run", "active", "active.lrr=0.1"], cwd=project, check=False)
    assert out.returncode == 2, out.stderr
    assert "active.lrr" in out.stderr
    assert "Traceback" not in out.stderr


def test_compose_check_detects_stale_params(project):
    run(["atriom", "compose"], cwd=project)
    assert run(["atriom", "compose", "--check"], cwd=project).returncode == 0
    conf = project / "conf" / "active" / "default.yaml"
    epochs = int(re.search(r"(?m)^epochs: (\d+)$", conf.read_text()).group(1))
    conf.write_text(conf.read_text().replace(f"epochs: {epochs}", f"epochs: {epochs + 1}"))
    out = run(["atriom", "compose", "--check"], cwd=project, check=False)
    assert out.returncode == 1
    assert f"-  epochs: {epochs}" in out.stdout and f"+  epochs: {epochs + 1}" in out.stdout
    run(["atriom", "compose"], cwd=project)
    assert run(["atriom", "compose", "--check"], cwd=project).returncode == 0
