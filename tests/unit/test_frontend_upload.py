"""What `make frontend-upload` puts in the web bucket (frontend/upload.py): the servable files
only, and a config.json that points the page at the deployed API and streams."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def _upload_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "frontend_upload", REPO_ROOT / "frontend/upload.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_servable_files(tmp_path: Path) -> None:
    upload = _upload_module()
    (tmp_path / "js").mkdir()
    (tmp_path / "vendor").mkdir()
    for name in ("index.html", "js/app.js", "vendor/lib.mjs", ".DS_Store", "notes.md", "x.exe"):
        (tmp_path / name).write_text("x")
    keys = [key for _, key in upload.files_to_upload(tmp_path)]
    assert keys == ["index.html", "js/app.js", "vendor/lib.mjs"]


def test_config_points_at_the_stack() -> None:
    upload = _upload_module()
    outputs = {
        "RestApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/dev/",
        "WebSocketStreamsUrl": "wss://d1.cloudfront.net",
    }
    assert upload.page_config(outputs) == {
        "apiBase": "https://abc.execute-api.eu-west-1.amazonaws.com/dev",
        "wsBase": "wss://d1.cloudfront.net",
    }
    assert upload.page_config({"RestApiUrl": "https://x/dev"}) == {"apiBase": "https://x/dev"}
