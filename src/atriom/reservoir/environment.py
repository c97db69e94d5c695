"""The environment report: installed distributions, Python, platform and git."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from atriom.git import git_info, strip_credentials


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
    """Every installed distribution, sorted by normalised name."""
    rows = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if not name:
            continue
        key = name.lower().replace("_", "-")
        location = getattr(dist, "_path", None)
        rows[key] = {
            "name": key,
            "version": dist.version,
            "installer": (dist.read_text("INSTALLER") or "").strip() or None,
            "location": str(Path(location).parent) if location else None,
            **_source(dist),
        }
    return [rows[k] for k in sorted(rows)]


def environment_report(root: Path) -> dict[str, Any]:
    packages = installed_packages()
    versions = {p["name"]: p["version"] for p in packages}
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
        "key_packages": {
            name: versions.get(name)
            for name in (
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
        },
        "git": git_info(root).to_dict(),
        "packages": packages,
    }
