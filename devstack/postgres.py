"""PostgreSQL from Debian's packages, in a cluster of our own.

PostgreSQL refuses to run as root, so when we are root initdb and postgres run as the
`postgres` OS user and the cluster's folders belong to it. The cluster lives in the stack dir
when that user can reach it; a clone under a private home (``/root``, mode 0700) is out of its
reach, so there the cluster lives in a folder of its own under ``/var/lib/bourse-devstack``
(named by a hash of the stack dir, owned by `postgres`, mode 0700), and the stack dir's
``pg-home`` file records where, for later runs and for ``make clean``. The cluster's superuser
is reached over the unix socket in that folder; the app's role and database (from
settings.pg_dsn) are created by us, then the migrations are applied as that role, which
creates the functions' own least-privilege roles (bourse_reader, bourse_recorder, ...) as it
does on Aurora; the gateway and the consumers connect as those, as the functions do on AWS.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from devstack.service import Launch, Service, StackError, child_env

PG_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
# Outside any home: root-owned and world-traversable, so the `postgres` user reaches its
# folders below whatever the modes of the clone's parents.
OUTSIDE_ROOT = Path("/var/lib/bourse-devstack")
HOME_RECORD = "pg-home"


def remove_stale_lock(lock: Path) -> bool:
    """Remove a PostgreSQL lock file (postmaster.pid, the socket's .lock) when its pid is gone
    or a zombie; True when removed.

    PostgreSQL removes a lock whose pid is gone by itself, but refuses to start while that pid
    exists at all, and a postmaster that crashed under `run` stays a zombie of it until `run`
    spawns something again (only then does Python reap its children): `up` could not bring
    PostgreSQL back (`make chaos` kills it)."""
    try:
        pid = int(lock.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        raw = ""
    # The state follows the command name, which may hold spaces and parentheses.
    if raw and raw[raw.rindex(")") + 2] != "Z":
        return False
    lock.unlink(missing_ok=True)
    return True


def find_bin_dir() -> Path:
    """The newest installed major version's bin dir."""
    versions = []
    for candidate in PG_ROOT.glob("*/bin/postgres") if PG_ROOT.is_dir() else []:
        version = candidate.parent.parent.name
        if version.isdigit() and (candidate.parent / "initdb").exists():
            versions.append((int(version), candidate.parent))
    if not versions:
        raise StackError(
            f"postgres: no PostgreSQL server under {PG_ROOT}; run `make system-packages` "
            "(as root) or `apt-get install postgresql`"
        )
    return max(versions)[1]


class Postgres(Service):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
    stop_signal = signal.SIGINT

    @property
    def home_record(self) -> Path:
        return self.paths.root / HOME_RECORD

    @property
    def home(self) -> Path:
        """Where the cluster and its socket live: the recorded folder outside the stack dir,
        else the stack dir's own ``pg``."""
        if self.home_record.is_file():
            return Path(self.home_record.read_text().strip())
        return self.paths.data("pg")

    def outside_home(self) -> Path:
        # One folder per stack dir, so two clones (or a test's fresh stack) never share one.
        digest = hashlib.sha256(str(self.paths.root.resolve()).encode()).hexdigest()[:16]
        return OUTSIDE_ROOT / digest

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def ports(self) -> dict[int, str]:
        return {self.settings.pg_port: "BOURSE_PG_DSN"}

    @property
    def endpoint(self) -> str:
        return self.settings.pg_dsn

    @property
    def os_user(self) -> str | None:
        return OS_USER if os.geteuid() == 0 else None

    def prepare(self) -> None:
        bin_dir = find_bin_dir()
        self._choose_home()
        for folder in (self.home, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            self._own(folder)
        if self.os_user and not self._user_can_write(self.home):
            raise StackError(
                f"postgres: the `{OS_USER}` user cannot write to {self.home}; "
                f"remove {self.home_record} to let the next `up` choose another place"
            )
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            if version_file.read_text().strip() != bin_dir.parent.name:
                raise StackError(
                    f"postgres: {self.data_dir} was made by PostgreSQL "
                    f"{version_file.read_text().strip()}, installed is {bin_dir.parent.name}; "
                    "remove the folder (its data is lost) or install that version"
                )
            remove_stale_lock(self.data_dir / "postmaster.pid")
            remove_stale_lock(self.socket_dir / f".s.PGSQL.{self.settings.pg_port}.lock")
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)  # a half-made cluster from a failed initdb
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                 "--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--no-locale",
                 "--no-sync"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
                cwd=self.home, user=self.os_user, group=self.os_user,
                extra_groups=[] if self.os_user else None,
            )  # fmt: skip
        if result.returncode != 0:
            raise self.fail("initdb failed")

    def _choose_home(self) -> None:
        """Once per stack dir: keep the cluster in the stack dir when the `postgres` user can
        write there, else move it outside and record where."""
        if not self.os_user or self.home_record.is_file():
            return
        in_stack = self.paths.data("pg")
        in_stack.mkdir(parents=True, exist_ok=True)
        self._own(in_stack)
        if self._user_can_write(in_stack):
            return
        if any(in_stack.iterdir()):
            raise StackError(
                f"postgres: the `{OS_USER}` user cannot reach the cluster in {in_stack}; make "
                "every parent folder of the stack dir world-executable (chmod o+x), or remove it"
            )
        in_stack.rmdir()
        OUTSIDE_ROOT.mkdir(mode=0o755, exist_ok=True)
        outside = self.outside_home()
        # With no record, a folder there is an orphan of a stack dir removed by hand (rm -rf
        # .devstack): its cluster would not match the new stack's Kafka, so it goes too.
        shutil.rmtree(outside, ignore_errors=True)
        outside.mkdir(mode=0o700)
        self._own(outside)
        self.home_record.write_text(f"{outside}\n")

    def _own(self, path: Path) -> None:
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _user_can_write(self, path: Path) -> bool:
        result = subprocess.run(
            ["test", "-w", str(path)], user=self.os_user, group=self.os_user,
            extra_groups=[], check=False,
        )  # fmt: skip
        return result.returncode == 0

    def launch(self) -> Launch:
        argv = [
            str(find_bin_dir() / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.settings.pg_port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "logging_collector=off",
            "-c", "max_connections=200",
            # Development data: speed over surviving a power cut.
            "-c", "synchronous_commit=off",
        ]  # fmt: skip
        return Launch(argv, env=child_env({"LC_ALL": "C.UTF-8"}), cwd=self.home, user=self.os_user)

    def _superuser_dsn(self, dbname: str = "postgres") -> str:
        return (
            f"host={self.socket_dir} port={self.settings.pg_port} "
            f"user={SUPERUSER} dbname={dbname} connect_timeout=3"
        )

    def ping(self) -> None:
        import psycopg  # heavy; `status` and `down` never need it

        with psycopg.connect(self._superuser_dsn()) as conn:
            conn.execute("SELECT 1").fetchone()

    def configure(self) -> list[str]:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict

        from bourse.adapters.migrations import MigrationError, apply_migrations

        app = conninfo_to_dict(self.settings.pg_dsn)
        role, dbname = str(app.get("user", "bourse")), str(app.get("dbname", "bourse"))
        notes: list[str] = []
        with psycopg.connect(self._superuser_dsn(), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if found.fetchone() is None:
                # CREATEDB so tests can make throwaway databases as the app's own role.
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(role)))
                notes.append(f"created role {role}")
            # CREATEROLE, as Aurora's master user has it: the migrations create the functions'
            # own roles (0006_function_roles.sql) here exactly as on AWS. Also for a cluster
            # made before they did.
            conn.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(role)))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(role)
                    )
                )
                notes.append(f"created database {dbname}")
        try:
            applied = apply_migrations(self.settings.pg_dsn)
        except MigrationError as exc:
            raise StackError(f"postgres: migrations: {exc}") from exc
        notes.extend(f"applied migration {m.label}" for m in applied)
        return notes
