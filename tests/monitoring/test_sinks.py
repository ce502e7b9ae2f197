"""Alert sinks: the log, a webhook to a real local HTTP receiver, a real local command."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import AlertDeliveryFailed, ForbiddenAddress, InvalidParameter
from loopml.monitoring import (
    AlertEvent,
    CheckResult,
    CommandSink,
    LogSink,
    MonitorResult,
    Sink,
    WebhookSink,
    sink_from_spec,
)
from loopml.monitoring._addresses import forbidden_reason

EVENT = AlertEvent(
    monitor="credit",
    check="drift",
    column="age",
    method="psi",
    segment="",
    state="firing",
    statistic=0.31,
    threshold=0.2,
    message="age moved <!channel> & more",
    started_at=1_733_000_000_000,
    result_id=7,
    report="/reports/7.html",
)
DEADLINE = 30.0  # seconds a blocked handler waits at most for the test to release it


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    block: bool = False  # hold the answer until the test releases it
    trickle: bool = False  # send a header a byte at a time until the client leaves
    body: bytes = b"ok"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and plays scripted answers."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.script: list[Answer] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                answer = receiver.script.pop(0) if receiver.script else Answer()
                if answer.block:
                    receiver.release.wait(DEADLINE)
                if answer.trickle:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                    end = time.monotonic() + DEADLINE
                    # The pause paces the drip (the behaviour under test), it waits for nothing.
                    while time.monotonic() < end and not receiver.release.wait(0.02):
                        try:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self, *answers: Answer) -> None:
        self.requests.clear()
        self.script[:] = list(answers)
        self.release.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def receiver(server: Receiver) -> Iterator[Receiver]:
    server.reset()
    yield server
    server.release.set()


def sink(receiver: Receiver, **options: Any) -> WebhookSink:
    options.setdefault("allow_private", True)
    options.setdefault("backoff", 0.01)
    return WebhookSink(receiver.url(), **options)


# --- events -------------------------------------------------------------------


def test_an_event_is_built_from_a_check_and_serialises_every_field() -> None:
    check = CheckResult("performance", "label", "accuracy", 0.8, 0.85, "alert", segment="v3")
    result = MonitorResult(
        "credit", "alert", 5, "dataset:credit:3", "frame", 10, 10, (check,), id=9
    )
    event = AlertEvent.from_check(result, check, "firing", report="r.html")
    assert event.key == check.key
    assert json.loads(event.to_json()) == {
        "monitor": "credit",
        "check": "performance",
        "column": "label",
        "method": "accuracy",
        "segment": "v3",
        "state": "firing",
        "statistic": 0.8,
        "threshold": 0.85,
        "message": "",
        "started_at": 5,
        "result_id": 9,
        "report": "r.html",
    }
    assert (
        event.title == "FIRING credit: performance of label [v3] (accuracy = 0.8, threshold 0.85)"
    )


def test_an_event_state_is_firing_or_resolved() -> None:
    with pytest.raises(InvalidParameter, match="'state' parameter of AlertEvent"):
        AlertEvent("m", "drift", "a", "psi", "", "open", None, None, "", 0)  # type: ignore[arg-type]


def test_every_sink_follows_the_protocol(tmp_path: Path) -> None:
    for each in (LogSink(), CommandSink(["true"]), WebhookSink("https://hooks.example.com/x")):
        assert isinstance(each, Sink)


# --- log ------------------------------------------------------------------------


def test_the_log_sink_warns_when_firing_and_informs_when_resolved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="loopml.monitoring.alerts")
    forged = AlertEvent(**{**EVENT.to_dict(), "column": "age\nERROR forged line"})
    LogSink().deliver(forged)
    resolved = AlertEvent(**{**EVENT.to_dict(), "state": "resolved"})
    LogSink().deliver(resolved)
    first, second = caplog.records
    assert first.levelno == logging.WARNING and second.levelno == logging.INFO
    assert "\n" not in first.getMessage() and "age\\nERROR forged line" in first.getMessage()
    assert "report: /reports/7.html" in first.getMessage()
    assert second.getMessage().startswith("RESOLVED credit: drift of age")
    assert first.alert == forged.to_dict()  # type: ignore[attr-defined]


# --- webhook: delivery ------------------------------------------------------------


def test_the_generic_webhook_posts_the_event_fields_as_json(receiver: Receiver) -> None:
    sink(receiver).deliver(EVENT)
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("loopml/")
    assert json.loads(request.body) == {**EVENT.to_dict(), "title": EVENT.title}


def test_the_slack_webhook_posts_text_and_blocks_with_stored_text_escaped(
    receiver: Receiver,
) -> None:
    sink(receiver, format="slack").deliver(EVENT)
    body = json.loads(receiver.requests[0].body)
    assert body["text"].startswith(":rotating_light: FIRING credit: drift of age")
    header, message, facts, context = body["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert message["text"]["text"] == "age moved &lt;!channel&gt; &amp; more"
    assert {"type": "mrkdwn", "text": "*Column*\nage"} in facts["fields"]
    assert context["elements"][0]["text"] == "Report: /reports/7.html"
    assert "<!channel>" not in receiver.requests[0].body.decode()


def test_extra_headers_are_sent(receiver: Receiver) -> None:
    sink(receiver, headers={"Authorization": "Bearer t0ken", "X-Team": "ml"}).deliver(EVENT)
    headers = receiver.requests[0].headers
    assert headers["Authorization"] == "Bearer t0ken" and headers["X-Team"] == "ml"


def test_a_503_is_retried_until_the_receiver_accepts(receiver: Receiver) -> None:
    receiver.reset(Answer(503), Answer(502), Answer(200))
    sink(receiver, retries=3).deliver(EVENT)
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1


def test_a_webhook_that_keeps_failing_raises_after_its_retries(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.reset(*[Answer(500)] * 5)
    with pytest.raises(AlertDeliveryFailed, match="failed 3 time") as failure:
        sink(receiver, retries=2).deliver(EVENT)
    assert failure.value.attempts == 3 and len(receiver.requests) == 3
    assert "HTTP 500" in str(failure.value)
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


def test_retry_after_is_obeyed(receiver: Receiver) -> None:
    receiver.reset(Answer(429, {"Retry-After": "1"}), Answer(200))
    sink(receiver, retries=1).deliver(EVENT)
    first, second = receiver.requests
    assert second.at - first.at >= 1.0  # a lower bound only: sleeping is never shorter


def test_retry_after_is_capped_by_max_wait(receiver: Receiver) -> None:
    receiver.reset(Answer(503, {"Retry-After": "3600"}), Answer(200))
    sink(receiver, retries=1, max_wait=0.05).deliver(EVENT)
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(("status", "why"), [(400, "not retried"), (302, "redirects")])
def test_client_errors_and_redirects_are_final(receiver: Receiver, status: int, why: str) -> None:
    receiver.reset(Answer(status, {"Location": receiver.url("/elsewhere")}))
    with pytest.raises(AlertDeliveryFailed, match=why) as failure:
        sink(receiver, retries=3).deliver(EVENT)
    assert failure.value.attempts == 1
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_receiver_slower_than_the_timeout_fails_the_attempt(receiver: Receiver) -> None:
    receiver.reset(Answer(block=True))
    with pytest.raises(AlertDeliveryFailed, match=r"TimeoutError|timed out"):
        sink(receiver, retries=0, timeout=0.2).deliver(EVENT)
    assert len(receiver.requests) == 1


def test_a_receiver_that_trickles_its_answer_is_cut_at_the_timeout(receiver: Receiver) -> None:
    receiver.reset(Answer(trickle=True))
    with pytest.raises(AlertDeliveryFailed, match=r"no whole answer within 0\.3 s"):
        sink(receiver, retries=0, timeout=0.3).deliver(EVENT)


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    webhook = WebhookSink(f"http://127.0.0.1:{port}/x", allow_private=True, retries=1, backoff=0.01)
    with pytest.raises(AlertDeliveryFailed, match="ConnectionRefusedError") as failure:
        webhook.deliver(EVENT)
    assert failure.value.attempts == 2


def test_credentials_in_the_url_are_sent_but_never_shown(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://alice:s3cret@127.0.0.1:{receiver.port}/services/T0/B0/TOKEN42?key=k3y"
    webhook = WebhookSink(url, allow_private=True, retries=1, backoff=0.01)
    echo = b"no route for POST /services/T0/B0/TOKEN42?key=k3y from alice"
    receiver.reset(Answer(500, body=echo), Answer(500, body=echo))
    with pytest.raises(AlertDeliveryFailed, match=r"HTTP 500 \(no route for POST") as failure:
        webhook.deliver(EVENT)
    request = receiver.requests[0]
    assert request.path == "/services/T0/B0/TOKEN42?key=k3y"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    shown = [str(failure.value), repr(webhook), caplog.text]
    for secret in ("s3cret", "alice", "TOKEN42", "k3y"):
        assert all(secret not in text for text in shown)
    assert repr(webhook) == f"WebhookSink('http://127.0.0.1:{receiver.port}/…', format='generic')"


# --- webhook: forbidden addresses -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://hooks.example.com/x",
        "gopher://127.0.0.1/",
        "http://127.0.0.1/hook",
        "http://127.0.0.1.:8080/hook",
        "http://10.1.2.3/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a00:1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fc00::1]/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://localhost:8080/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "https://user:pw@127.0.0.1/",
    ],
)
def test_forbidden_urls_are_refused_when_the_sink_is_made(url: str) -> None:
    with pytest.raises(ForbiddenAddress) as refusal:
        WebhookSink(url)
    assert "pw" not in str(refusal.value)


def test_the_setting_allows_private_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_WEBHOOK_ALLOW_PRIVATE", "1")
    assert WebhookSink("http://127.0.0.1:9/x").allow_private is True
    with pytest.raises(ForbiddenAddress, match="http or https"):
        WebhookSink("file:///etc/passwd")


def test_a_stored_spec_cannot_allow_private_addresses() -> None:
    with pytest.raises(InvalidParameter, match="allow_private"):
        sink_from_spec({"webhook": "http://127.0.0.1/", "allow_private": True})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/x", "https://hooks.slack.com/…"),
        ("https://93.184.215.14/", "https://93.184.215.14"),
        ("http://[2606:4700::1]:8080/?token=x", "http://[2606:4700::1]:8080/…"),
        ("https://BÜCHER.example/x", "https://xn--bcher-kva.example/…"),
    ],
)
def test_public_urls_are_accepted_without_any_lookup(
    url: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError("no lookup when the sink is made")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert WebhookSink(url).shown_url == shown


def fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make host names resolve to chosen addresses (a stand-in for a hostile DNS)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        out = []
        for address in answers[host]:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1"], ["93.184.215.14", "10.0.0.5"], ["::ffff:169.254.169.254"]]
)
def test_a_name_that_resolves_to_a_forbidden_address_is_refused_at_delivery(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:
    webhook = WebhookSink(f"http://hooks.example.test:{receiver.port}/x", retries=2)
    fake_resolver(monkeypatch, {"hooks.example.test": addresses})
    with pytest.raises(ForbiddenAddress, match="resolves to"):
        webhook.deliver(EVENT)
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_checked_with_the_name_as_host(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = fake_resolver(monkeypatch, {"receiver.test": ["127.0.0.1"]})
    WebhookSink(f"http://receiver.test:{receiver.port}/x", allow_private=True).deliver(EVENT)
    assert receiver.requests[0].headers["Host"] == f"receiver.test:{receiver.port}"
    assert asked == ["receiver.test"]  # one lookup: the connection reused its answer


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    """A real HTTPS receiver whose self-signed certificate names receiver.test."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=receiver.test",
         "-addext", "subjectAltName=DNS:receiver.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver = Receiver(tls=context)
    yield receiver, cert
    receiver.server.shutdown()
    receiver.server.server_close()


def test_https_checks_the_certificate_against_the_name_while_connecting_to_the_address(
    tls_server: tuple[Receiver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, cert = tls_server
    receiver.reset()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own certificate
    fake_resolver(monkeypatch, {"receiver.test": ["127.0.0.1"]})
    url = f"https://receiver.test:{receiver.port}/x"
    WebhookSink(url, allow_private=True).deliver(EVENT)
    assert receiver.requests[0].headers["Host"] == f"receiver.test:{receiver.port}"
    assert json.loads(receiver.requests[0].body)["monitor"] == "credit"


def test_an_untrusted_certificate_is_final(
    tls_server: tuple[Receiver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, _cert = tls_server
    receiver.reset()
    fake_resolver(monkeypatch, {"receiver.test": ["127.0.0.1"]})
    webhook = WebhookSink(f"https://receiver.test:{receiver.port}/x", allow_private=True)
    with pytest.raises(AlertDeliveryFailed, match="TLS certificate was refused") as failure:
        webhook.deliver(EVENT)
    assert failure.value.attempts == 1 and receiver.requests == []


ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@given(ipv4)
def test_an_ipv4_address_is_judged_the_same_in_every_ipv6_form(
    address: ipaddress.IPv4Address,
) -> None:
    forbidden = forbidden_reason(address) is not None
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    for form in (mapped, sixtofour, nat64):
        assert forbidden <= (forbidden_reason(form) is not None)


@given(
    st.sampled_from(["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16"]), st.data()
)
def test_every_address_of_a_forbidden_network_is_refused(network: str, data: st.DataObject) -> None:
    net = ipaddress.IPv4Network(network)
    address = net[data.draw(st.integers(min_value=0, max_value=net.num_addresses - 1))]
    with pytest.raises(ForbiddenAddress):
        WebhookSink(f"http://{int(address)}/")  # the decimal spelling of the address


# --- webhook: bad parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"format": "teams"}, "'format' parameter"),
        ({"retries": -1}, "'retries' parameter"),
        ({"retries": True}, "'retries' parameter"),
        ({"timeout": 0}, "'timeout' parameter"),
        ({"timeout": float("inf")}, "'timeout' parameter"),
        ({"headers": {"X-A": "1\r\nX-Injected: 1"}}, "X-A"),
        ({"headers": {"Bad Name": "1"}}, "header names"),
        ({"headers": {"Host": "evil"}}, "must not set Host"),
        ({"allow_private": "yes"}, "'allow_private' parameter"),
    ],
)
def test_bad_webhook_parameters_are_named(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        WebhookSink("https://hooks.example.com/x", **options)


@pytest.mark.parametrize(
    "url",
    ["http:///x", "http://exa mple.com/", "http://[zz::1]/", "http://host:99999/", "http://a..b/"],
)
def test_malformed_urls_are_named(url: str) -> None:
    with pytest.raises(InvalidParameter, match="'url' parameter of WebhookSink"):
        WebhookSink(url)


# --- command --------------------------------------------------------------------


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("command") / "hook.py"
    path.write_text(
        "import json, os, sys\n"
        "out, mode = sys.argv[1], sys.argv[2]\n"
        "stdin = sys.stdin.read()\n"
        "if mode == 'fail':\n"
        "    print('no route to pager', file=sys.stderr)\n"
        "    sys.exit(3)\n"
        "if mode == 'hang':\n"
        "    import threading; threading.Event().wait()\n"
        "env = json.loads(os.environ['LOOPML_ALERT'])\n"
        "with open(out, 'w') as f:\n"
        "    json.dump({'stdin': json.loads(stdin), 'env': env}, f)\n"
    )
    return path


def test_the_command_gets_the_event_on_stdin_and_in_its_environment(
    script: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    CommandSink([sys.executable, str(script), str(out), "ok"]).deliver(EVENT)
    seen = json.loads(out.read_text())
    assert seen == {"stdin": EVENT.to_dict(), "env": EVENT.to_dict()}


def test_a_failing_command_raises_with_its_stderr(script: Path, tmp_path: Path) -> None:
    with pytest.raises(AlertDeliveryFailed, match="status 3; its stderr ends: no route to pager"):
        CommandSink([sys.executable, str(script), str(tmp_path / "x"), "fail"]).deliver(EVENT)


def test_a_command_past_its_timeout_is_killed(script: Path, tmp_path: Path) -> None:
    with pytest.raises(AlertDeliveryFailed, match=r"longer than 0\.5 s and was killed"):
        CommandSink(
            [sys.executable, str(script), str(tmp_path / "x"), "hang"], timeout=0.5
        ).deliver(EVENT)


def test_a_missing_program_is_reported(tmp_path: Path) -> None:
    with pytest.raises(AlertDeliveryFailed, match="could not start"):
        CommandSink([str(tmp_path / "no-such-program")]).deliver(EVENT)


@pytest.mark.parametrize(
    ("argv", "timeout"),
    [([], 30), ("notify", 30), (["a", 1], 30), ([""], 30), (["a\0b"], 30), (["a"], -1)],
)
def test_bad_command_parameters_are_named(argv: Any, timeout: Any) -> None:
    with pytest.raises(InvalidParameter, match="parameter of CommandSink"):
        CommandSink(argv, timeout=timeout)


# --- specs ----------------------------------------------------------------------


def test_specs_build_each_sink() -> None:
    assert isinstance(sink_from_spec("log"), LogSink)
    webhook = sink_from_spec(
        {"webhook": "https://hooks.example.com/x", "format": "slack", "retries": 1, "timeout": 2}
    )
    assert isinstance(webhook, WebhookSink)
    assert (webhook.format, webhook.retries, webhook.timeout) == ("slack", 1, 2.0)
    command = sink_from_spec({"command": ["notify", "--team", "ml"], "timeout": 5})
    assert isinstance(command, CommandSink) and command.argv == ["notify", "--team", "ml"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("email", "must be 'log'"),
        (["log"], "must be 'log'"),
        ({}, "exactly one of the keys"),
        ({"webhook": "https://a.example/", "command": ["x"]}, "exactly one of the keys"),
        ({"webhook": "https://a.example/", "fromat": "slack"}, "unknown keys \\['fromat'\\]"),
        ({"command": "notify --all"}, "'command' key of a sink spec"),
        ({"webhook": 42}, "'url' parameter of WebhookSink must be a str"),
    ],
)
def test_bad_specs_name_what_is_wrong(spec: Any, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        sink_from_spec(spec)


def test_a_caller_may_refuse_command_specs() -> None:
    with pytest.raises(InvalidParameter, match="allow_command=False"):
        sink_from_spec({"command": ["rm", "-rf", "/"]}, allow_command=False)
    assert isinstance(sink_from_spec("log", allow_command=False), LogSink)


def test_importing_monitoring_loads_no_http_stack_templates_or_services() -> None:
    # ssl and subprocess come with SQLAlchemy (asyncio), which the monitor store needs.
    probe = (
        "import sys, loopml.monitoring\n"
        "loaded = [m for m in ('http.client', 'jinja2', 'loopml.monitoring._http',"
        " 'loopml.serving', 'scipy', 'sklearn') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
