"""Logging: stdlib ``logging`` with a rich console handler and a plain file per stage."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LOGGER_NAME = "atriom"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_console(level: int = logging.INFO) -> None:
    """Attach one rich handler to the ``atriom`` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if any(getattr(h, "_atriom_console", False) for h in logger.handlers):
        return
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._atriom_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    quiet_libraries()


def quiet_libraries() -> None:
    """Progress bars and info chatter of transformers/FFmpeg would drown the stage's own log."""
    import os

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)


@contextlib.contextmanager
def log_to_file(path: Path, level: int = logging.INFO) -> Iterator[Path]:
    """Copy everything the ``atriom`` logger says to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
