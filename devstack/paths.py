"""Where the stack keeps its data, logs and pid files (all under settings.stack_dir)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bourse.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVSTACK_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackPaths:
        root = Path(settings.stack_dir)
        # Relative to the repository, not the caller's cwd, so `make` and tests agree.
        return cls(root if root.is_absolute() else REPO_ROOT / root)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "run"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def data(self, name: str) -> Path:
        return self.root / name

    def create(self) -> None:
        for path in (self.root, self.logs, self.pids):
            path.mkdir(parents=True, exist_ok=True)
