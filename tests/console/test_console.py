"""The operator console in a real browser (issue 13): the release binary on
free ports with auth on, the seed's example worker heartbeating (one chat
REST process on home-instance-1: capacity 5 / 4 / 10 / 14, limits
8 / 11 / 13), admitted and refused traffic that opens the backpressure
circuit, then Debian's chromium driven by Playwright opens /ui/.

Run by scripts/test-console.sh (FLOODGATE_BIN names the binary).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from floodgate_client import Decision, FloodgateClient, HeartbeatLoop, Transport, UserType

# Conditions the page reaches by polling every 2 s (not timing claims).
expect.set_options(timeout=15_000)

REPO = Path(__file__).resolve().parents[2]
ADMIN = "console-admin-token"
FRONTEND = "console-frontend-token"
WORKER = "console-worker-token"
CHROMIUM = os.environ.get("FLOODGATE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path(os.environ.get("FLOODGATE_CONSOLE_SCREENSHOT", REPO / "target" / "console.png"))

# Development capacity rules (the seed's numbers); registered users get a
# burst of 3 so a fourth request is a 429; the backpressure circuit opens
# after 3 refusals and stays open (no timed recovery during the test).
CONFIG = """
profile = "development"

[runtime.rate_limits.registered]
per_minute = 60
burst = 3

[runtime.breakers.backpressure]
failure_threshold = 3
recovery_timeout_ms = 600000
"""


class Floodgate:
    """The binary under test, started on loopback ports chosen by the OS."""

    def __init__(self, config_path: str) -> None:
        binary = os.environ.get("FLOODGATE_BIN", str(REPO / "target" / "release" / "floodgate"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_") and k != "RUST_LOG"}
        env.update(
            FLOODGATE_ADMIN_TOKENS=ADMIN,
            FLOODGATE_FRONTEND_TOKENS=FRONTEND,
            FLOODGATE_WORKER_TOKENS=WORKER,
            FLOODGATE_CONFIG=config_path,
        )
        self.proc = subprocess.Popen(
            [binary, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.grpc, self.http = self._wait_listening()
        # Keep draining the log so the server never blocks on a full pipe.
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_listening(self) -> tuple[str, str]:
        assert self.proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                seen.append(line.rstrip())
                m = re.search(r"floodgate listening grpc=(\S+) http=(\S+)", line)
                if m:
                    return m.group(1), m.group(2)
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError("floodgate did not report listening:\n" + "\n".join(seen))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"

    def get_json(self, path: str, token: str | None = ADMIN) -> tuple[int, dict]:
        request = urllib.request.Request(self.url(path))
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: graceful shutdown (a no-op once it exited)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Traffic:
    """An asyncio loop in a thread: the worker's heartbeats, and calls on demand."""

    def __init__(self, grpc: str) -> None:
        self.grpc = grpc
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.beat: HeartbeatLoop | None = None
        self.run(self._start_worker())

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start_worker(self) -> None:
        # The seed's example: one chat REST process on home-instance-1.
        self.worker = FloodgateClient(self.grpc, token=WORKER)
        self.frontend = FloodgateClient(self.grpc, token=FRONTEND)
        self.beat = HeartbeatLoop(self.worker, "home-instance-1", "pid-4242", capacity=5, load=0, interval=1.0)
        await self.beat.start()

    async def check(self, user_type: UserType, subject: str) -> Decision:
        result = await self.frontend.check_capacity(user_type, subject, transport=Transport.REST, route="/landing/chat")
        return result.decision

    async def enqueue(self, user_type: UserType, subject: str) -> Decision:
        result = await self.frontend.enqueue_atomic(user_type, subject, b'{"text": "hello"}', route="/landing/chat")
        return result.decision

    async def _close(self) -> None:
        if self.beat is not None:
            await self.beat.stop()
        await self.worker.close()
        await self.frontend.close()

    def close(self) -> None:
        self.run(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def floodgate():
    fd, path = tempfile.mkstemp(prefix="floodgate-console-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(CONFIG)
    server = Floodgate(path)
    os.unlink(path)  # read once at startup
    yield server
    server.stop()


def wait_for(what: str, ok, seconds: float = 15.0):
    """Polls `ok` until it returns something truthy (a condition, not a timing claim)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = ok()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def traffic(floodgate):
    t = Traffic(floodgate.grpc)
    wait_for("the worker's capacity (T = 14)",
             lambda: floodgate.get_json("/debug/capacity-calculation")[1]["totals"]["system_total"] == 14)
    # Admitted and rate-limited (429): registered burst is 3.
    registered = [t.run(t.check(UserType.REGISTERED, "user-7")) for _ in range(5)]
    assert registered.count(Decision.ADMIT) == 3 and registered.count(Decision.RATE_LIMITED) == 2, registered
    # Level 2 fills the queue to the hard limit: 8 anonymous (their limit),
    # 3 registered (to 11), 2 privileged (to 13 of T = 14).
    enqueued = [t.run(t.enqueue(UserType.ANONYMOUS, f"anon-{i}")) for i in range(8)]
    enqueued += [t.run(t.enqueue(UserType.REGISTERED, f"user-{i}")) for i in range(3)]
    enqueued += [t.run(t.enqueue(UserType.PRIVILEGED, f"staff-{i}")) for i in range(2)]
    assert enqueued == [Decision.ADMIT] * 13, enqueued
    # Level 1 now refuses non-privileged users as overload (503); three
    # refusals open the backpressure circuit (then it answers circuit_open).
    def opened():
        t.run(t.check(UserType.ANONYMOUS, "anon-late"))
        return floodgate.get_json("/admin/circuit-breakers")[1]["circuits"]["backpressure"]["state"] == "open"
    wait_for("the backpressure circuit to open", opened)
    yield t
    t.close()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/test-console.sh installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_console(browser: Browser, floodgate: Floodgate):
    context = browser.new_context(viewport={"width": 1400, "height": 1900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(floodgate.url("/"))
    expect(page).to_have_url(floodgate.url("/ui/"))
    return context, page, problems


def test_the_console_shows_capacity_processes_throttling_and_resets_a_circuit(browser, floodgate, traffic):
    context, page, problems = open_console(browser, floodgate)
    # Auth is on: the page asks for the token and shows no data before it.
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#data")).to_be_hidden()
    page.fill("#token", ADMIN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#data")).to_be_visible()
    assert ADMIN not in page.url

    # Capacity: the seed's 5 / 4 / 10 / 14 and the limits 8 / 11 / 13.
    for selector, value in [("#cap-concurrent", "5"), ("#cap-effective", "4"), ("#cap-queue", "10"), ("#cap-total", "14"),
                            ("#limit-anonymous", "8"), ("#limit-registered", "11"), ("#limit-privileged", "13"),
                            ("#load", "13")]:
        expect(page.locator(selector)).to_have_text(value)
    expect(page.locator("#capacity-steps li")).to_have_count(8)
    expect(page.locator("#capacity-steps li").nth(7)).to_contain_text("14 total system capacity")
    expect(page.locator("#pressure-gauge path.gauge-value")).to_have_count(1)

    # Processes: the worker, healthy, with a heartbeat age.
    row = page.locator("#process-rows tr[data-process='pid-4242']")
    expect(row).to_contain_text("home-instance-1")
    expect(row).to_contain_text("HEALTHY")
    expect(row).to_contain_text("ago")

    # Throttling: the chart has admitted and refused points; the table and reasons.
    expect(page.locator("#throttle-chart circle.point.admitted")).not_to_have_count(0)
    expect(page.locator("#throttle-chart circle.point.refused")).not_to_have_count(0)
    expect(page.locator("#throttle-periods tr")).to_have_count(5)
    expect(page.locator("#throttle-periods tr[data-window='1h'] td").nth(4)).to_have_text("2")  # two 429s
    expect(page.locator("#top-sessions")).to_contain_text("anon-late")

    # Queues and alerts.
    expect(page.locator("#queue-rows tr").nth(0)).to_contain_text("anonymous")
    for i, waiting in enumerate(["8", "3", "2"]):
        expect(page.locator("#queue-rows tr").nth(i).locator("td").nth(1)).to_have_text(waiting)
        # Each class has a task waiting: its oldest task's age is shown.
        expect(page.locator("#queue-rows tr").nth(i).locator("td").nth(2)).to_have_text(re.compile(r"^\d+(\.\d)? s$"))
    expect(page.locator("#alert-list li[data-code='circuit_open_backpressure']")).to_contain_text("CRITICAL")

    # Live config.
    expect(page.locator("#live-config")).to_contain_text('"concurrent_per_process": 5')

    # Circuits: backpressure is open; reset closes it.
    state = page.locator("#circuit-rows tr[data-circuit='backpressure'] .state")
    expect(state).to_have_text("OPEN")
    expect(page.locator("#circuit-rows tr[data-circuit='backpressure'] td").nth(4)).to_have_text(re.compile(r"^\d+ s$"))
    page.click("button[data-reset='backpressure']")
    expect(state).to_have_text("CLOSED")
    expect(page.locator("#circuit-message")).to_contain_text("backpressure reset: now closed")
    assert floodgate.get_json("/admin/circuit-breakers")[1]["circuits"]["backpressure"]["state"] == "closed"

    # Nothing went wrong in the browser up to here.
    assert problems == [], problems

    # Config: an invalid change shows the API's field error (the browser
    # reports the 422 answer itself); a valid one previews.
    page.fill("#config-change", '{"anonymous_threshold": 1.5}')
    page.click("#config-validate")
    expect(page.locator("#config-result .field-errors")).to_contain_text("anonymous_threshold")
    page.fill("#config-change", '{"concurrent_per_process": 10}')
    page.click("#config-validate")
    expect(page.locator("#config-result")).to_contain_text("System total would be 28")
    expect(page.locator("#cap-total")).to_have_text("14")  # validate changed nothing

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # The token lives in session storage only, never in the page's HTML.
    assert page.evaluate("sessionStorage.getItem('floodgate.adminToken')") == ADMIN
    assert ADMIN not in page.content()
    context.close()
    assert all("422" in p for p in problems), problems


def test_a_wrong_token_shows_an_error_and_no_data(browser, floodgate, traffic):
    context, page, problems = open_console(browser, floodgate)
    page.fill("#token", "not-the-admin-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("was refused (HTTP 401")
    expect(page.locator("#data")).to_be_hidden()
    expect(page.locator("#token-form")).to_be_visible()
    for selector in ("#cap-total", "#limit-anonymous", "#live-config"):
        assert page.locator(selector).text_content() == "", selector
    assert page.locator("#process-rows tr").count() == 0
    assert page.evaluate("sessionStorage.getItem('floodgate.adminToken')") is None
    context.close()
    # The browser reports the refused requests themselves (401); nothing else.
    assert all("401" in p for p in problems), problems


def test_a_frontend_token_is_not_an_admin_token(browser, floodgate, traffic):
    context, page, _ = open_console(browser, floodgate)
    page.fill("#token", FRONTEND)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#error")).to_contain_text("is not an admin token (HTTP 403")
    expect(page.locator("#data")).to_be_hidden()
    context.close()


def test_the_console_assets_are_served_from_the_binary_without_a_token(floodgate):
    with urllib.request.urlopen(floodgate.url("/ui/"), timeout=5) as r:
        html = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
    assert '<script src="/ui/app.js"' in html and "http://" not in html and "https://" not in html
    assert "script-src 'self'" in csp
    for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        with urllib.request.urlopen(floodgate.url(path), timeout=5) as r:
            assert r.headers["Content-Type"].startswith(kind)
    status, body = floodgate.get_json("/monitoring/processes", token=None)
    assert status == 401, body
