"""Optional extras: what a configuration needs beyond the core, and the one line naming the
extra to install when it is missing (the fresh-venv install is in tests/deploy)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wharf import extras
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.operations import RedisConfig
from wharf.extras import MissingExtra, check, requirements

S3 = StorageConfig(driver="s3", parameters={"bucket": "b", "region": "r"})


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda name: name not in modules and real(name))


def test_a_filesystem_registry_needs_nothing_more() -> None:
    assert list(requirements(Config(), {})) == []


@pytest.mark.parametrize(
    ("config", "environ", "blocked", "install"),
    [
        (Config(storage=S3), {}, "boto3", "pip install 'wharf-registry[s3]'"),
        (
            Config(storage=StorageConfig(driver="azure", parameters={})),
            {},
            "azure.storage.blob",
            "pip install 'wharf-registry[azure]'",
        ),
        (
            Config(storage=StorageConfig(driver="gcs", parameters={})),
            {},
            "google.auth",
            "pip install 'wharf-registry[gcs]'",
        ),
        (
            Config(redis=RedisConfig("redis:6379")),
            {},
            "redis",
            "pip install 'wharf-registry[redis]'",
        ),
        (
            Config(http=HTTPConfig(server="granian")),
            {},
            "granian",
            "pip install 'wharf-registry[granian]'",
        ),
        (
            Config(),
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            "opentelemetry.sdk.trace",
            "pip install 'wharf-registry[tracing]'",
        ),
        (
            Config(),
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
            "pip install opentelemetry-exporter-otlp-proto-grpc",
        ),
    ],
)
def test_a_missing_extra_is_named_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
    config: Config,
    environ: dict[str, str],
    blocked: str,
    install: str,
) -> None:
    _missing(monkeypatch, blocked)
    with pytest.raises(MissingExtra) as raised:
        check(config, environ)
    message = str(raised.value)
    assert message.endswith(f"not installed: {install}")
    assert "\n" not in message


def test_serve_stops_in_the_parent_with_one_line(tmp_path: Path) -> None:
    """boto3 hidden from the process: exit status 2 and one line, before any worker."""
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: {s3: {bucket: b, region: r}}\n")
    script = textwrap.dedent(
        """
        import sys

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("boto3", "botocore"):
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Hide())
        from wharf.cli import main
        sys.exit(main(["serve", sys.argv[1]]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "wharf: error: storage driver 's3' needs boto3, which is not installed: "
        "pip install 'wharf-registry[s3]'"
    ]
