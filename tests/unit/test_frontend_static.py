"""The gateway's static files (devstack/gateway/static.py): the page and its assets with their
content types, and nothing outside frontend/public, however the path is spelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.gateway import static

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "js").mkdir(parents=True)
    (public / "index.html").write_text("<!doctype html>")
    (public / "js" / "app.js").write_text("export {};")
    (public / "style.css").write_text("body{}")
    (public / ".env").write_text("SECRET=1")
    (public / "notes.exe").write_text("x")
    (tmp_path / "outside.html").write_text("outside")
    (public / "link.html").symlink_to(tmp_path / "outside.html")
    return public


@pytest.mark.parametrize(
    ("path", "name", "content_type"),
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/?x=1", "index.html", "text/html; charset=utf-8"),
        ("/js/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/style.css?v=2", "style.css", "text/css; charset=utf-8"),
    ],
)
def test_serves_files_with_their_type(root: Path, path: str, name: str, content_type: str) -> None:
    answer = static.response("GET", path, root)
    assert answer is not None
    status, headers, body = answer
    assert status == 200
    assert dict(headers)["Content-Type"] == content_type
    assert dict(headers)["X-Content-Type-Options"] == "nosniff"
    assert body == next(root.rglob(name)).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/../outside.html",
        "/js/../../outside.html",
        "/%2e%2e/outside.html",
        "/js/%2E%2E/%2e%2e/outside.html",
        "/..%2foutside.html",
        "/js%2f..%2f..%2foutside.html",
        "/..\\outside.html",
        "/link.html",  # a symlink out of the root
        "/.env",
        "/notes.exe",  # no content type we serve
        "/missing.js",
        "/js",  # a folder
        "/js/",  # a folder without an index
        "//etc/passwd",
        "/index.html%00.js",
    ],
)
def test_nothing_outside_the_root(root: Path, path: str) -> None:
    assert static.response("GET", path, root) is None


def test_only_get_and_head(root: Path) -> None:
    assert static.response("POST", "/", root) is None
    assert static.response("DELETE", "/index.html", root) is None
    head = static.response("HEAD", "/", root)
    assert head is not None and head[0] == 200 and head[2] == b""


def test_the_real_page_is_there() -> None:
    """frontend/public as shipped: the page, its modules and its stylesheet."""
    for path in ("/", "/js/app.js", "/js/api.js", "/style.css", "/favicon.svg"):
        assert static.response("GET", path) is not None, path
