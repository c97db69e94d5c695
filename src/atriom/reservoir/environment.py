"""The environment report: packages, Python, platform, torch build, git, allow-listed variables.

Secrets never leave the process: environment variables are reported only when allow-listed,
and any allow-listed name that looks like a secret (KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL)
has its value replaced by ``<redacted>``; URLs anywhere in the report (VCS sources, git
remotes, variable values) have their ``user:password@`` part stripped.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from atriom.git import git_info, strip_credentials

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
KEY_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "mlflow",
    "dvc",
    "hydra-core",
    "av",
    "numpy",
)


def normalise_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _source(dist: metadata.Distribution) -> dict[str, Any]:
    """Editable/VCS/archive origin from PEP 610 ``direct_url.json`` (credentials stripped)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return {"editable": False, "source": None}
    try:
        info = json.loads(text)
    except ValueError:
        return {"editable": False, "source": None}
    url = strip_credentials(str(info.get("url", "")))
    vcs = info.get("vcs_info")
    if vcs:
        url = f"{vcs.get('vcs', 'vcs')}+{url}@{vcs.get('commit_id', '')}"
    return {
        "editable": bool(info.get("dir_info", {}).get("editable", False)),
        "source": url or None,
    }


def installed_packages() -> list[dict[str, Any]]:
    """Every installed distribution, sorted by normalised name (first on sys.path wins)."""
    rows: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if not name:
            continue
        key = normalise_name(name)
        if key in rows:
            continue
        location = getattr(dist, "_path", None)
        rows[key] = {
            "name": key,
            "version": dist.version,
            "installer": (dist.read_text("INSTALLER") or "").strip() or None,
            "location": str(Path(location).parent) if location else None,
            **_source(dist),
        }
    return [rows[k] for k in sorted(rows)]


def environment_variables(
    allowlist: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Allow-listed variables that are set; secret-looking names redacted, URLs de-credentialed."""
    environ = os.environ if environ is None else environ
    report = {}
    for name in sorted(set(allowlist)):
        if name not in environ:
            continue
        report[name] = REDACTED if SECRET_NAME.search(name) else strip_credentials(environ[name])
    return report


def torch_build() -> dict[str, Any]:
    """torch's version and build: CUDA/cuDNN versions when present, MPS availability."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    mps = getattr(torch.backends, "mps", None)
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "hip": getattr(torch.version, "hip", None),
        "debug": bool(torch.version.debug),
        "mps_built": bool(mps and mps.is_built()),
        "num_threads": torch.get_num_threads(),
    }


_REQUIRES = re.compile(
    r"^(?P<pkg>\S+) (?P<ver>\S+) requires (?P<req>\S+), which is not installed\.?$"
)
_HAS_REQ = re.compile(
    r"^(?P<pkg>\S+) (?P<ver>\S+) has requirement (?P<req>.+), but you have (?P<have>\S+) (?P<havever>\S+?)\.?$"
)


def pip_check() -> dict[str, Any]:
    """``pip check``: broken requirements between installed packages, parsed."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "check"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"ran": False, "error": str(exc), "conflicts": []}
    return {"ran": True, "conflicts": parse_pip_check(out.stdout)}


def parse_pip_check(text: str) -> list[dict[str, Any]]:
    """One entry per line ``pip check`` printed (``found`` is None for missing requirements)."""
    conflicts = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.lower().startswith("no broken requirements"):
            continue
        if m := _REQUIRES.match(line):
            conflicts.append(
                {
                    "package": m["pkg"],
                    "version": m["ver"],
                    "requires": m["req"],
                    "found": None,
                    "line": line,
                }
            )
        elif m := _HAS_REQ.match(line):
            conflicts.append(
                {
                    "package": m["pkg"],
                    "version": m["ver"],
                    "requires": m["req"],
                    "found": m["havever"],
                    "line": line,
                }
            )
        else:
            conflicts.append(
                {"package": None, "version": None, "requires": None, "found": None, "line": line}
            )
    return conflicts


def environment_report(
    root: Path, allowlist: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    packages = installed_packages()
    versions = {p["name"]: p["version"] for p in packages}
    git = git_info(root).to_dict()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "torch": torch_build(),
        "key_packages": {name: versions.get(name) for name in KEY_PACKAGES},
        "git": git,
        "environment_variables": environment_variables(allowlist, environ),
        "pip_check": pip_check(),
        "packages": packages,
    }
