"""Configuration: schema (dataclasses), composition from ``conf/``, ``params.yaml`` loading."""

from atriom.config.compose import (
    PARAMS_FILE,
    apply_overrides,
    check_params,
    compose,
    find_project_root,
    load_params,
    render,
    stage_params,
    validate,
    write_params,
)
from atriom.config.schema import STAGE_PARAMS, STAGE_UPSTREAM, AtriomConfig

__all__ = [
    "PARAMS_FILE",
    "STAGE_PARAMS",
    "STAGE_UPSTREAM",
    "AtriomConfig",
    "apply_overrides",
    "check_params",
    "compose",
    "find_project_root",
    "load_params",
    "render",
    "stage_params",
    "validate",
    "write_params",
]
