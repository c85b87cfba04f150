"""The Redis engine against the real servers of scripts/with-redis.sh.

OTPENGINE_REDIS_URL, OTPENGINE_REDIS_CLUSTER and OTPENGINE_REDIS_SERVER name
them; without them these tests are skipped with a loud message, and fail under
OTPENGINE_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import otpengine
from otpengine import Status
from conftest import wrong

SECRET = b"otpengine Python test secret 32b"


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if value:
        return value
    message = f"{name} is not set: the Python tests against Redis are SKIPPED; run them with scripts/with-redis.sh (make test does)"
    if os.environ.get("OTPENGINE_REQUIRE_REDIS") == "1":
        pytest.fail(f"OTPENGINE_REQUIRE_REDIS=1 but {message}")
    print(f"\n{'!' * 78}\n{message}\n{'!' * 78}", file=sys.stderr)
    pytest.skip(message)


def unique(label: str) -> str:
    return f"py-{label}-{os.getpid()}-{time.time_ns()}"


def redis_engine(url: str) -> otpengine.Engine:
    return otpengine.Engine(
        redis_url=url,
        secret=SECRET,
        resend_cooldown=0.0,
        max_issues_per_window=0,
        redis_connect_timeout=0.3,
        redis_response_timeout=0.3,
    )


@pytest.mark.parametrize("var", ["OTPENGINE_REDIS_URL", "OTPENGINE_REDIS_CLUSTER"])
def test_two_instances_share_one_store(var: str) -> None:
    url = env(var)
    a, b = redis_engine(url), redis_engine(url)
    assert repr(a).startswith("<otpengine.Engine: redis at 127.0.0.1:")
    a.ping()
    key = unique("pair")
    code = a.issue(key, context="EUR 10")
    first = b.verify(key, wrong(code), context="EUR 10")
    assert (first.status, first.attempts_left) == (Status.MISMATCH, 4)
    assert a.verify(key, wrong(code), context="EUR 10").attempts_left == 3, "counted across instances"
    assert b.unlock(key) is True and a.unlock(key) is False, "the failure count is shared too"
    assert b.verify(key, code, context="EUR 10")
    assert a.verify(key, code, context="EUR 10").status is Status.NOT_FOUND
    codes = b.issue_many([f"{key}-{i}" for i in range(20)])
    assert all(isinstance(c, str) for c in codes)
    statuses = a.verify_many([(f"{key}-{i}", str(c)) for i, c in enumerate(codes)])
    assert statuses == [Status.VERIFIED] * 20
    assert a.revoke(key) is False
    stats = a.stats()
    assert (stats["issued"], stats["mismatched"], stats["verified"], stats["unavailable"]) == (1, 1, 20, 0)


def test_signal_handlers_do_not_cut_redis_calls_short() -> None:
    """Python installs its signal handlers without SA_RESTART, and a socket read
    with a timeout is never restarted after a handler: a signal arriving while a
    call waits for Redis must not turn it into BackendUnavailable (the engine
    blocks signals on the calling thread for the exchange; the handler runs
    right after)."""
    url = env("OTPENGINE_REDIS_CLUSTER")
    engine = redis_engine(url)
    handled = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: handled.append(1))
    caller = threading.get_ident()
    stop = threading.Event()

    def pester() -> None:
        # Runs while the caller is in a call (which releases the GIL).
        while not stop.is_set():
            signal.pthread_kill(caller, signal.SIGUSR1)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    sender = threading.Thread(target=pester)
    sender.start()
    try:
        for i in range(1000):
            key = unique(f"signals-{i}")
            code = engine.issue(key)
            assert engine.verify(key, code).status is Status.VERIFIED, i
    finally:
        stop.set()
        sender.join()
        sys.setswitchinterval(interval)
        signal.signal(signal.SIGUSR1, previous)
    assert handled, "the signals arrived, and were handled"
    assert engine.stats()["unavailable"] == 0


def test_key_counts_need_exact_counts() -> None:
    url = env("OTPENGINE_REDIS_URL")
    lean = otpengine.Engine(redis_url=url, secret=SECRET, redis_namespace=unique("lean"))
    lean.issue("alice")
    assert (len(lean), lean.stats()["live"], lean.stats()["held"]) == (0, 0, 0), "not counted by default"
    exact = otpengine.Engine(redis_url=url, secret=SECRET, redis_namespace=unique("exact"), redis_exact_counts=True)
    exact.issue("alice")
    assert (len(exact), exact.stats()["live"], exact.stats()["held"]) == (1, 1, 1)


def test_redis_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="secret must be given with a Redis URL: 16 to 1024 bytes"):
        otpengine.Engine(redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="secret must be between 16 and 1024 bytes long, got 5 bytes"):
        otpengine.Engine(redis_url="redis://127.0.0.1:1/0", secret=b"short")
    with pytest.raises(TypeError, match="secret must be bytes, got str"):
        otpengine.Engine(redis_url="redis://127.0.0.1:1/0", secret="a str secret, 16+ chars")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="redis_url must be a redis://"):
        otpengine.Engine(redis_url="http://example.com", secret=SECRET)
    with pytest.raises(ValueError, match="redis_response_timeout must be between 0.001 and 60.0 seconds, got 0.0"):
        otpengine.Engine(redis_url="redis://127.0.0.1:1/0", secret=SECRET, redis_response_timeout=0.0)
    with pytest.raises(ValueError, match="redis_connect_timeout must be left unset without a Redis URL"):
        otpengine.Engine(redis_connect_timeout=1.0)
    # A secret alone is the in-memory engine's digest secret.
    assert otpengine.Engine(secret=SECRET, manual_clock=True).issue("alice")


def test_over_mutual_tls_and_as_an_acl_user() -> None:
    mtls, auth = env("OTPENGINE_REDIS_MTLS_URL"), env("OTPENGINE_REDIS_AUTH_URL")
    tls_files = dict(
        redis_ca_file=env("OTPENGINE_REDIS_TLS_CA"),
        redis_client_cert=env("OTPENGINE_REDIS_TLS_CLIENT_CERT"),
        redis_client_key=env("OTPENGINE_REDIS_TLS_CLIENT_KEY"),
    )
    common = dict(secret=SECRET, redis_namespace="otpengine-py-security", redis_connect_timeout=0.5)
    engine = otpengine.Engine(redis_url=mtls, **tls_files, **common)  # type: ignore[arg-type]
    code = engine.issue(unique("tls"))
    assert code and engine.stats()["issued"] == 1
    with pytest.raises(otpengine.BackendUnavailable, match="TLS handshake failed"):
        otpengine.Engine(redis_url=mtls, redis_ca_file=tls_files["redis_ca_file"], **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^redis_ca_file must be a readable PEM file, got /nonexistent"):
        otpengine.Engine(redis_url=mtls, redis_ca_file="/nonexistent/ca.pem", **common)  # type: ignore[arg-type]

    user, password = env("OTPENGINE_REDIS_ACL_USER"), env("OTPENGINE_REDIS_ACL_PASSWORD")
    engine = otpengine.Engine(redis_url=auth, redis_username=user, redis_password=password, **common)  # type: ignore[arg-type]
    key = unique("acl")
    assert engine.verify(key, engine.issue(key))
    with pytest.raises(otpengine.BackendUnavailable, match="authentication failed") as raised:
        otpengine.Engine(redis_url=auth, redis_username=user, redis_password="wrong-hunter2", **common)  # type: ignore[arg-type]
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ValueError, match="^redis_password must be left unset without a Redis URL, got a value$"):
        otpengine.Engine(redis_password="hunter2")


@pytest.mark.parametrize(
    "url",
    [
        "redis://alice:hunter2@localhost/notadb",
        "redis://localhost/notadb?password=hunter2",
        "redis+unix:///run/redis.sock?pass=hunter2&db=x",
        "redis+cluster://alice:hunter2@a:1,,b:2",
    ],
)
def test_a_bad_url_is_named_with_its_password_hidden(url: str) -> None:
    with pytest.raises(ValueError, match="redis_url must be") as raised:
        otpengine.Engine(redis_url=url, secret=SECRET)
    assert "hunter2" not in str(raised.value)


def test_an_unreachable_server_is_backend_unavailable() -> None:
    with pytest.raises(otpengine.BackendUnavailable) as raised:
        otpengine.Engine(redis_url="redis://127.0.0.1:1/0", secret=SECRET, redis_connect_timeout=0.2)
    assert isinstance(raised.value, otpengine.OtpError)
    assert str(raised.value).startswith("redis at 127.0.0.1:1 unreachable")
    assert otpengine.BackendUnavailable.__module__ == "otpengine"


class OwnServer:
    """A redis-server this test alone controls, on a free loopback port."""

    def __init__(self, binary: str, directory: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.binary, self.directory = binary, directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:  # bounded poll until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"redis-server on port {self.port} did not start"
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(env("OTPENGINE_REDIS_SERVER"), tmp_path)
    server.start()
    yield server
    server.kill()


def test_an_outage_raises_backend_unavailable_and_the_engine_recovers(own_server: OwnServer) -> None:
    engine = redis_engine(own_server.url)
    code = engine.issue("alice")
    own_server.kill()
    with pytest.raises(otpengine.BackendUnavailable, match=f"redis at 127.0.0.1:{own_server.port}"):
        engine.verify("alice", code)
    with pytest.raises(otpengine.BackendUnavailable):
        engine.issue("bob")
    with pytest.raises(otpengine.BackendUnavailable):
        engine.revoke("alice")
    verdicts = engine.verify_many([("alice", code), ("bob", "123456")])
    assert all(isinstance(v, otpengine.BackendUnavailable) for v in verdicts)
    answers = engine.issue_many(["x", "y", "z"])
    assert all(isinstance(a, otpengine.BackendUnavailable) for a in answers)
    assert str(answers[2]) == str(answers[0]), "the keys after the first failure get its error"
    assert engine.stats()["unavailable"] == 5, "each batch stopped trying at its first failure"
    with pytest.raises(otpengine.BackendUnavailable):
        engine.ping()
    assert engine.stats()["unavailable"] == 5, "a ping counts nowhere"
    own_server.start()
    engine.ping()
    assert engine.verify("alice", code).status is Status.NOT_FOUND, "nothing was persisted"
    code = engine.issue("alice")
    assert engine.verify("alice", code)
