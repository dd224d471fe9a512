"""The trading page's files (frontend/public) on the gateway's port, for paths that are no API
route: on AWS the same files sit in S3 behind CloudFront, locally one origin serves both, so
the page needs no CORS and no configured API address.

Only regular files under the root, with an extension listed here, are served; anything else
(an unknown path, a dot file, a path that climbs out of the root through ``..``, an encoded
slash or a symlink) is not static, and the gateway answers it as API Gateway would (404).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from devstack.paths import REPO_ROOT

STATIC_ROOT = REPO_ROOT / "frontend" / "public"
INDEX = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

Response = tuple[int, list[tuple[str, str]], bytes]


def resolve(raw_path: str, root: Path = STATIC_ROOT) -> Path | None:
    """The file a request path names under ``root``, or None when it names none."""
    path = unquote(urlsplit(raw_path).path)
    if "\\" in path or "\0" in path or not path.startswith("/"):
        return None
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") for part in parts):  # "..", ".", and dot files alike
        return None
    if not parts or path.endswith("/"):
        parts.append(INDEX)
    candidate = root.joinpath(*parts)
    if candidate.suffix not in CONTENT_TYPES:
        return None
    try:
        real = candidate.resolve(strict=True)
        base = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(base) or not real.is_file():
        return None
    return real


def response(method: str, raw_path: str, root: Path = STATIC_ROOT) -> Response | None:
    """The static answer for a GET or HEAD, or None to let the gateway answer."""
    if method not in ("GET", "HEAD"):
        return None
    file = resolve(raw_path, root)
    if file is None:
        return None
    body = file.read_bytes()
    headers = [
        ("Content-Type", CONTENT_TYPES[file.suffix]),
        # Development: an edited file shows on the next reload.
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return 200, headers, b"" if method == "HEAD" else body
