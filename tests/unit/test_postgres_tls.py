"""PostgreSQL over TLS on AWS verifies the server (issue: ``sslmode=require`` did not): the
template's DSNs say ``verify-full`` and the connection factory hands libpq the RDS and RDS
Proxy CA certificates that `make rds-ca` builds into the layer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from bourse.adapters import postgres
from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_connect(dsn: str, **kwargs: Any) -> object:
        calls.append({"dsn": dsn, **kwargs})
        return object()

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    return calls


def test_verify_full_gets_the_rds_ca_bundle(
    opened: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "rds-ca-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(postgres, "RDS_CA_BUNDLE", bundle)
    postgres.connect("host=proxy.example port=5432 dbname=bourse user=bourse sslmode=verify-full")
    assert opened[-1]["sslrootcert"] == str(bundle)


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 dbname=bourse user=bourse",  # the local stack: no TLS
        "host=h dbname=bourse user=bourse sslmode=require",
        "host=h dbname=bourse user=bourse sslmode=verify-full sslrootcert=/etc/own.pem",
    ],
)
def test_other_modes_and_an_explicit_root_are_left_alone(
    opened: list[dict[str, Any]], dsn: str
) -> None:
    postgres.connect(dsn)
    assert "sslrootcert" not in opened[-1]


def test_a_build_without_the_bundle_says_so(
    opened: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres, "RDS_CA_BUNDLE", tmp_path / "missing.pem")
    with pytest.raises(postgres.MissingCaBundle, match="make rds-ca"):
        postgres.connect("host=h dbname=bourse user=bourse sslmode=verify-full")
    assert opened == []


# One of RDS's older CA certificates has a serial number RFC 5280 no longer allows; it is
# AWS's to reissue, and libpq reads it fine.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_the_built_bundle_holds_the_rds_and_amazon_root_cas() -> None:
    # `make test` builds it (make rds-ca) before the suite runs.
    certs = x509.load_pem_x509_certificates(postgres.RDS_CA_BUNDLE.read_bytes())
    subjects = [
        " ".join(str(a.value) for a in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
        for c in certs
    ]
    assert len(certs) >= 100
    assert any(s.startswith("Amazon RDS us-east-1") for s in subjects), subjects[:5]
    assert "Amazon Root CA 1" in subjects  # RDS Proxy's certificates chain to Amazon's roots
    for cert in certs:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca


def test_every_dsn_of_the_template_verifies_the_server() -> None:
    text = (REPO_ROOT / "template.yaml").read_text()
    dsns = re.findall(r'"(host=\$\{[^"]*)"', text)
    assert dsns, "no PostgreSQL DSN found in template.yaml"
    for dsn in dsns:
        assert "sslmode=verify-full" in dsn.split(), dsn
