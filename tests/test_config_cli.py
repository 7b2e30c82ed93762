"""A configuration that fails fast: ``wharf serve`` and ``wharf config check`` on bad
configurations (real processes), and ``wharf config check`` on Distribution's sample
configurations and on every configuration example of the README."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.certificates import write_certificate, write_key
from tests.support.server import WharfServer, free_port
from wharf.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# A process that checks, says why and leaves spends well under a second of CPU (imports
# included); a restart loop, the failure these tests guard against, spends tens of seconds.
# The budget is wide so that a slow or loaded machine cannot fail a correct start.
CPU_BUDGET = 3.0


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return {**env, **overrides}


@pytest.fixture(autouse=True)
def no_registry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


# --- bad configurations, as real processes ---------------------------------------------------


def bad_configs(tmp_path: Path, port: int) -> dict[str, tuple[str, str]]:
    """name -> (config.yml text, the start of its one-line error)."""
    certificate, key = write_certificate(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    encrypted = tmp_path / "encrypted-key.pem"
    write_key(encrypted, passphrase=b"secret")
    users = write_htpasswd(tmp_path / "htpasswd")
    head = f"version: 0.1\nhttp: {{addr: '127.0.0.1:{port}', secret: s}}\n"

    def tls(key: Path, more: str = "") -> str:
        return (
            f"version: 0.1\nstorage: inmemory\nhttp: {{addr: '127.0.0.1:{port}', "
            f"tls: {{certificate: {certificate}, key: {key}{more}}}}}\n"
        )

    token = "auth: {token: {realm: 'https://r.example/token', service: r, issuer: i}, %s}\n"
    return {
        "s3 without a bucket": (
            head + "storage: {s3: {}}\n",
            "storage driver 's3': bucket must name a bucket",
        ),
        "a TLS key that is not PEM": (
            tls(garbage),
            f"http.tls.key: {garbage} holds no PEM private key",
        ),
        "an encrypted TLS key": (tls(encrypted), f"http.tls.key: {encrypted} is encrypted"),
        "a client CA that is not PEM": (
            tls(key, f", clientcas: [{garbage}]"),
            f"http.tls.clientcas: {garbage} holds no PEM certificate",
        ),
        "a misspelt root directory": (
            head + "storage: {filesystem: {rootdirectroy: /srv/registry}}\n",
            "unknown parameter 'rootdirectroy' for storage driver 'filesystem'",
        ),
        "an unknown section": (
            head + "storage: inmemory\nsotrage: {delete: {enabled: true}}\n",
            "sotrage: unknown key (--lenient makes it a warning)",
        ),
        "an unknown key in a section": (
            head.replace("secret: s", "secret: s, adress: ':6000'") + "storage: inmemory\n",
            "http.adress: unknown key",
        ),
        "let's encrypt": (
            head + "storage: inmemory\nhttp: {tls: {letsencrypt: {cachefile: /c, email: a@b.c}}}\n",
            "http.tls.letsencrypt: not supported by wharf",
        ),
        "an unknown storage middleware": (
            head + "storage: inmemory\nmiddleware: {storage: [{name: cloudfrnt}]}\n",
            "middleware.storage.0.name: unknown storage middleware 'cloudfrnt' (known: "
            "cloudfront, redirect, rewrite)",
        ),
        "a CloudFront key that is not PEM": (
            head
            + "storage: {s3: {bucket: b, region: us-east-1}}\nmiddleware: {storage: [{name: "
            + f"cloudfront, options: {{baseurl: cdn.example, privatekey: {garbage}, "
            + "keypairid: K}}]}\n",
            f"middleware.storage.0.options.privatekey: {garbage} holds no PEM private key",
        ),
        "a redirect without a base URL": (
            head + "storage: inmemory\nmiddleware: {storage: [{name: redirect}]}\n",
            "middleware.storage.0.options.baseurl: required",
        ),
        "error reporting": (
            head + "storage: inmemory\nreporting: {bugsnag: {apikey: k}}\n",
            "reporting.bugsnag.apikey: not supported by wharf",
        ),
        "manifest URL policies": (
            head + "storage: inmemory\nvalidation: {manifests: {urls: {allow: ['^https://']}}}\n",
            "validation.manifests.urls.allow: not supported by wharf",
        ),
        "schema 1": (
            head + "storage: inmemory\ncompatibility: {schema1: {enabled: true}}\n",
            "compatibility.schema1.enabled: not supported by wharf",
        ),
        "repository classes": (
            head + "storage: inmemory\npolicy: {repository: {classes: [image]}}\n",
            "policy.repository.classes: not supported by wharf",
        ),
        "a missing htpasswd file": (
            head + f"storage: inmemory\nauth: {{htpasswd: {{realm: r, path: {tmp_path}/none}}}}\n",
            f"auth.htpasswd.path: no such file: {tmp_path}/none",
        ),
        "a token key that is not PEM": (
            head
            + "storage: inmemory\n"
            + token % f"tokenservice: {{users: {users}, key: {garbage}}}",
            f"auth.tokenservice.key: {garbage}: not an unencrypted PEM private key",
        ),
    }


def run_timed(
    args: list[str], cwd: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """The finished process, its wall time and its CPU time (user and system, children too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begun = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "wharf", *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    wall = time.monotonic() - begun
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def write_htpasswd(path: Path) -> Path:
    password = bcrypt.hashpw(b"password", bcrypt.gensalt(4)).decode()
    path.write_text(f"alice:{password}\n")
    return path


def nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("command", ["serve", "config check"])
def test_each_bad_config_is_one_line_and_exit_status_2_at_once(
    tmp_path: Path, command: str
) -> None:
    port = free_port()
    slowest = (0.0, 0.0, "")
    for name, (text, expected) in bad_configs(tmp_path, port).items():
        config = tmp_path / "config.yml"
        config.write_text(text)
        result, wall, cpu = run_timed([*command.split(), str(config)], tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == "", name
        assert "Traceback" not in result.stderr, name
        assert result.stderr.count("\n") == 1, (name, result.stderr)
        assert result.stderr.startswith(f"wharf: error: {expected}"), (name, result.stderr)
        # CPU time, which a loaded machine does not stretch as it does the wall clock: the
        # process checks, says why and leaves; it starts nothing that keeps going.
        assert cpu < CPU_BUDGET, (name, cpu)
        assert wall < 10.0, (name, wall)
        slowest = max(slowest, (cpu, wall, name))
        if command == "serve":
            assert nothing_listens(port), name
            assert not (tmp_path / "wharf-data").exists(), name
    print(f"slowest: {slowest[2]}: {slowest[0]:.2f}s of CPU, {slowest[1]:.2f}s in all")


def test_under_json_logs_the_error_is_one_json_object(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {formatter: json, fields: {service: registry}}\nstorage: {s3: {}}\n"
    )
    result, _, cpu = run_timed(["serve", str(config)], tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["msg"].startswith("storage driver 's3': bucket must name a bucket")
    assert entry["service"] == "registry"
    assert cpu < CPU_BUDGET
    # So is an error in the file itself, as far as its log section could be read.
    config.write_text("version: 0.1\nlog: {formatter: json}\nnonsense: 1\n")
    result, _, _ = run_timed(["serve", str(config)], tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stderr)["msg"].startswith("nonsense: unknown key")
    result, _, _ = run_timed(
        ["serve"], tmp_path, REGISTRY_LOG_FORMATTER="json", REGISTRY_HTTP_FOO="1"
    )
    assert result.returncode == 2
    assert json.loads(result.stderr)["msg"].startswith("http.foo (from REGISTRY_HTTP_FOO)")


def test_lenient_serving_warns_and_serves(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    port = free_port()
    config.write_text(
        f"version: 0.1\nstorage: inmemory\nhttp: {{addr: '127.0.0.1:{port}', secret: s}}\n"
        "sotrage: {delete: {enabled: true}}\n"
    )
    log = tmp_path / "wharf.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "wharf", "serve", "--lenient", str(config)],
            cwd=tmp_path,
            env=environment(),
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        lines = log.read_text().splitlines()
        assert "config: sotrage: unknown key, ignored" in lines[0]
        assert f"listening on 127.0.0.1:{port}, storage inmemory" in lines[1]
        assert not nothing_listens(port)  # the port was bound before that line was written
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


# --- wharf config check ----------------------------------------------------------------------


def config_check(
    capsys: pytest.CaptureFixture[str], path: Path, *options: str
) -> tuple[int, str, str]:
    status = main(["config", "check", *options, str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_config_check_prints_the_configuration_with_overrides_and_no_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        textwrap.dedent(
            """\
            version: 0.1
            storage:
              s3: {bucket: images, region: eu-west-1, accesskey: AKIAFILE, secretkey: filekey}
            http: {addr: '127.0.0.1:5000', secret: file-secret}
            redis: {addr: 'redis:6379', password: redis-password}
            notifications:
              endpoints:
                - name: audit
                  url: https://hooks.internal/registry
                  headers: {Authorization: [Bearer notification-token]}
            """
        )
    )
    monkeypatch.setenv("REGISTRY_HTTP_SECRET", "environment-secret")
    monkeypatch.setenv("REGISTRY_STORAGE_S3_SESSIONTOKEN", "session-token")
    monkeypatch.setenv("REGISTRY_CATALOG_MAXENTRIES", "250")
    status, out, err = config_check(capsys, config)
    assert (status, err) == (0, "")
    for secret in (
        "AKIAFILE",
        "filekey",
        "file-secret",
        "environment-secret",
        "redis-password",
        "notification-token",
        "session-token",
    ):
        assert secret not in out
    shown = yaml.safe_load(out)
    assert shown["catalog"] == {"maxentries": 250}  # the override, applied
    assert shown["http"] == {"addr": "127.0.0.1:5000", "secret": "***"}
    assert shown["storage"]["s3"]["bucket"] == "images"


def test_config_check_lenient_leaves_unknown_keys_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: inmemory\nhttp: {addr: ':5000', adress: x}\n")
    status, out, err = config_check(capsys, config)
    assert status == 2
    assert out == ""
    assert err == "wharf: error: http.adress: unknown key (--lenient makes it a warning)\n"
    status, out, err = config_check(capsys, config, "--lenient")
    assert status == 0
    assert yaml.safe_load(out)["http"] == {"addr": ":5000"}
    assert err.splitlines() == [
        "wharf: warning: http.adress: unknown key, ignored",
        "wharf: warning: http.addr :5000 accepts connections from other machines and there is "
        "no auth section: anyone who reaches it can pull and push",
    ]


# Distribution's sample configurations, from its documentation and its repository; file
# names they mention are replaced by files made for the test ({certificate}, ...).
FILESYSTEM_SAMPLE = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  tag:
    concurrencylimit: 8
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: {htpasswd}
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""
DEVELOPMENT_SAMPLE = """\
version: 0.1
log:
  level: debug
  fields:
    service: registry
    environment: development
storage:
    delete:
      enabled: true
    cache:
        blobdescriptor: inmemory
    filesystem:
        rootdirectory: /var/lib/registry
    maintenance:
        uploadpurging:
            enabled: false
    tag:
      concurrencylimit: 8
http:
    addr: :5000
    secret: asecretforlocaldevelopment
    debug:
        addr: :5001
        prometheus:
            enabled: true
            path: /metrics
    headers:
        X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""
S3_SAMPLE = """\
version: 0.1
storage:
  s3:
    accesskey: awsaccesskey
    secretkey: awssecretkey
    region: us-west-1
    regionendpoint: http://myobjects.local
    forcepathstyle: true
    accelerate: false
    bucket: bucketname
    encrypt: true
    keyid: mykeyid
    secure: true
    v4auth: true
    chunksize: 5242880
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 100
    multipartcopythresholdsize: 33554432
    rootdirectory: /s3/object/name/prefix
    usedualstack: false
    loglevel: debug
http:
  addr: localhost:5000
  secret: asecretforlocaldevelopment
"""
S3_CLOUDFRONT_SAMPLE = """\
version: 0.1
storage:
  s3:
    region: us-east-1
    bucket: docker.myregistry.com
middleware:
  storage:
    - name: cloudfront
      options:
        baseurl: https://abcdefghijklmn.cloudfront.net/
        privatekey: /etc/docker/cloudfront/pk-ABCEDFGHIJKLMNOPQRST.pem
        keypairid: ABCEDFGHIJKLMNOPQRST
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Files the samples and the README name: a certificate, its key, an htpasswd file."""
    certificate, key = write_certificate(tmp_path)
    htpasswd = write_htpasswd(tmp_path / "htpasswd")
    cloudfront = tmp_path / "cloudfront.pem"  # CloudFront signs with RSA keys only
    cloudfront.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    account = tmp_path / "service-account.json"  # a GCS service account's key file
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "registry@project.iam.gserviceaccount.com",
                "private_key": cloudfront.read_text(),
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return {
        "certificate": str(certificate),
        "key": str(key),
        "htpasswd": str(htpasswd),
        "cloudfront": str(cloudfront),
        "gcs": str(account),
    }


@pytest.mark.parametrize(
    ("sample", "error"),
    [
        (FILESYSTEM_SAMPLE, None),
        (DEVELOPMENT_SAMPLE, None),
        (S3_SAMPLE, None),
        (
            S3_CLOUDFRONT_SAMPLE,
            "middleware.storage.0.options.privatekey: cannot read "
            "/etc/docker/cloudfront/pk-ABCEDFGHIJKLMNOPQRST.pem: No such file or directory",
        ),
    ],
    ids=["filesystem", "development", "s3", "s3-cloudfront"],
)
def test_distribution_samples(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    sample: str,
    error: str | None,
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(sample.replace("{htpasswd}", files["htpasswd"]))
    status, out, err = config_check(capsys, config)
    if error is None:
        assert status == 0, err
        assert "awssecretkey" not in out
        assert "asecretforlocaldevelopment" not in out
        assert all(line.startswith("wharf: warning: ") for line in err.splitlines())
    else:
        assert (status, out, err) == (2, "", f"wharf: error: {error}\n")


# Distribution's reference: every option, as "List of configuration options" shows them
# (its placeholders filled in). proxy is left to the pull-through cache's own tests.
REFERENCE = """\
version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: text
  fields:
    service: registry
    environment: staging
  hooks:
    - type: mail
      disabled: true
      levels:
        - panic
      options:
        smtp:
          addr: mail.example.com:25
          username: mailuser
          password: password
          insecure: true
        from: sender@example.com
        to:
          - errors@example.com
loglevel: debug # deprecated: use "log"
storage:
  filesystem:
    rootdirectory: /var/lib/registry
    maxthreads: 100
  azure:
    accountname: accountname
    accountkey: base64encodedaccountkey
    container: containername
  inmemory:  # This driver takes no parameters
  tag:
    concurrencylimit: 8
  delete:
    enabled: false
  redirect:
    disable: false
  cache:
    blobdescriptor: redis
    blobdescriptorsize: 10000
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
auth:
  silly:
    realm: silly-realm
    service: silly-service
  token:
    autoredirect: true
    realm: token-realm
    service: token-service
    issuer: registry-token-issuer
    rootcertbundle: {certificate}
  htpasswd:
    realm: basic-realm
    path: {htpasswd}
middleware:
  registry:
    - name: ARegistryMiddleware
      options:
        foo: bar
  repository:
    - name: ARepositoryMiddleware
      options:
        foo: bar
  storage:
    - name: cloudfront
      options:
        baseurl: https://my.cloudfronted.domain.com/
        privatekey: /path/to/pem
        keypairid: cloudfrontkeypairid
        duration: 3000s
http:
  addr: localhost:5000
  prefix: /my/nested/registry/
  host: https://myregistryaddress.org:5000
  secret: asecretforlocaldevelopment
  relativeurls: false
  draintimeout: 60s
  tls:
    certificate: {certificate}
    key: {key}
    clientcas:
      - {certificate}
    clientauth: require-and-verify-client-cert
    letsencrypt:
      cachefile: /path/to/cache-file
      email: emailused@letsencrypt.com
      hosts: [myregistryaddress.org]
      directoryurl: https://acme-v02.api.letsencrypt.org/directory
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: false
  h2c:
    enabled: false
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers: {Authorization: [Bearer token]}
      timeout: 1s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
           - application/octet-stream
        actions:
           - pull
redis:
  tls:
    enabled: false
  addrs: [localhost:6379]
  password: asecret
  db: 0
  dialtimeout: 10ms
  readtimeout: 10ms
  writetimeout: 10ms
  maxidleconns: 16
  poolsize: 64
  connmaxidletime: 300s
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
  file:
    - file: /path/to/checked/file
      interval: 10s
  http:
    - uri: http://server.to.check/must/return/200
      headers:
        Authorization: [Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==]
      statuscode: 200
      timeout: 3s
      interval: 10s
      threshold: 3
  tcp:
    - addr: redis-server.domain.com:6379
      timeout: 3s
      interval: 10s
      threshold: 3
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/
    indexes:
      platforms: List
      platformlist:
      - architecture: amd64
        os: linux
"""


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(tree: dict[str, Any]) -> None:
        for key in keys:
            *parents, last = key.split(".")
            node = tree
            for part in parents:
                node = node[part]
            del node[last]

    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(tree: dict[str, Any]) -> None:
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


# Each error the reference configuration meets, in order, and what is changed to go past it.
REFERENCE_STEPS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    (
        "middleware.registry.0.name: not supported by wharf: registry middleware "
        "'ARegistryMiddleware'",
        _drop("middleware.registry"),
    ),
    (
        "middleware.repository.0.name: not supported by wharf",
        _drop("middleware.repository"),
    ),
    (
        "storage: exactly one driver allowed, got filesystem, azure, inmemory",
        _drop("storage.azure", "storage.inmemory"),
    ),
    (
        "storage.cache.blobdescriptorsize: not supported by wharf: its caches are bounded by "
        "their own limits, not by a count (--lenient makes it a warning)",
        _drop("storage.cache.blobdescriptorsize"),
    ),
    ("http.tls.letsencrypt: not supported by wharf", _drop("http.tls.letsencrypt")),
    ("validation.manifests.urls.allow: not supported by wharf", _drop("validation.manifests.urls")),
    (
        "middleware.storage.0.name: storage middleware 'cloudfront' works on the s3 storage "
        "driver only, not 'filesystem'",
        _drop("middleware"),
    ),
    ("auth: configure exactly one of htpasswd, token", _drop("auth.silly", "auth.htpasswd")),
    (
        "auth.token.realm: must be an absolute http(s) URL",
        _set("auth.token.realm", "https://registry.example.com/token"),
    ),
    ("auth.token.autoredirect: not supported", _set("auth.token.autoredirect", False)),
]


def test_distribution_reference_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str]
) -> None:
    text = REFERENCE
    for name, path in files.items():
        text = text.replace("{" + name + "}", path)
    tree = yaml.safe_load(text)
    config = tmp_path / "config.yml"
    for expected, edit in REFERENCE_STEPS:
        config.write_text(yaml.safe_dump(tree, sort_keys=False))
        status, out, err = config_check(capsys, config)
        assert (status, out) == (2, ""), err
        assert err.startswith(f"wharf: error: {expected}"), err
        assert err.count("\n") == 1
        edit(tree)
    config.write_text(yaml.safe_dump(tree, sort_keys=False))
    status, out, err = config_check(capsys, config)
    assert status == 0, err
    for secret in (
        "asecretforlocaldevelopment",
        "asecret\n",
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ",
        "token]",
    ):
        assert secret not in out


# --- the README's examples -------------------------------------------------------------------

#: A block whose top level names one of these is a configuration (others may be compose files).
_SECTIONS = {
    "version", "log", "storage", "http", "auth", "notifications", "redis", "health", "catalog",
    "proxy", "mirrors", "middleware", "validation", "compatibility", "policy", "reporting",
}  # fmt: skip


def readme_configurations() -> list[tuple[int, dict[str, Any]]]:
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), re.M | re.S)
    found = []
    for line, block in enumerate(blocks):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and _SECTIONS & set(document):
            found.append((line, document))
    return found


def _with_test_files(value: Any, files: dict[str, str], tmp_path: Path) -> Any:
    """The example with each file it names under /etc replaced by one made for the test."""
    if isinstance(value, dict):
        return {key: _with_test_files(item, files, tmp_path) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_test_files(item, files, tmp_path) for item in value]
    if isinstance(value, str) and value.startswith("/etc/"):
        name = Path(value).name
        if "/cloudfront/" in value:
            return files["cloudfront"]
        if name == "gcs.json":
            return files["gcs"]
        if "htpasswd" in name:
            return files["htpasswd"]
        if "key" in name:
            return files["key"]
        if name.endswith(".pem"):
            return files["certificate"]
        return str(tmp_path / name)  # a file whose absence means something (health checks)
    return value


def test_the_readme_has_configuration_examples() -> None:
    assert len(readme_configurations()) >= 3


@pytest.mark.parametrize(("index", "example"), readme_configurations())
def test_each_readme_example_is_valid(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    index: int,
    example: dict[str, Any],
) -> None:
    document = _with_test_files(copy.deepcopy(example), files, tmp_path)
    document.setdefault("version", "0.1")  # most examples show a part of a file
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    status, out, err = config_check(capsys, config)
    assert status == 0, f"README example {index}: {err}"
    assert all(line.startswith("wharf: warning: ") for line in err.splitlines()), err
    for secret in re.findall(r"secret: (\S+)", yaml.safe_dump(example)):
        assert secret not in out


# --- HTTP/2 as Distribution offers it ----------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("h2c", [False, True])
def test_granian_speaks_http2_without_tls_only_with_h2c(h2c: bool) -> None:
    pytest.importorskip("granian")
    server = WharfServer(
        storage={"inmemory": {}},
        config={"http": {"server": "granian", "h2c": {"enabled": h2c}}},
    )
    try:
        server.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            # HTTP/2 with prior knowledge: the preface, then an empty SETTINGS frame.
            connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5))
            answer = connection.recv(9)
        if h2c:
            assert answer[3] == 0x04  # the server's SETTINGS frame
        else:
            assert answer == b"" or answer.startswith(b"HTTP/1.1 ")  # closed, or HTTP/1
    finally:
        server.stop()
        server.cleanup()
