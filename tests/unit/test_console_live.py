"""Sysop console live view: batching, node/client/log rows, actions, keys (urwid.testing)."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from urwid.testing import press, render_runs, render_text

from bbs.app import App
from bbs.events import ConnectionOpened, LogEvent, SecurityEvent, UserLogon
from bbs.instance import init_instance, load_config
from bbs.listeners import Connection
from bbs.nodetable import NodeStatus
from console.live import PALETTE, SysopConsole
from console.model import LOG_SCROLLBACK, REFRESH_INTERVAL, ConsoleModel
from console.panes import LogsPane, NodesPane, log_row, node_row

SIZE = (120, 30)


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class Timers:
    """A recording scheduler in place of loop.call_later: no real time passes."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object]] = []

    def __call__(self, delay, callback):
        self.pending.append((delay, callback))

    def fire(self) -> None:
        pending, self.pending = self.pending, []
        for _, callback in pending:
            callback()


@pytest.fixture
def app(tmp_path: Path) -> App:
    init_instance(tmp_path)
    return App(load_config(tmp_path))


@pytest.fixture
def timers() -> Timers:
    return Timers()


@pytest.fixture
def ui(app: App, timers: Timers) -> SysopConsole:
    model = ConsoleModel(nodes=app.nodes.records(), connections=app.listeners.connections, schedule=timers)
    model.attach(app.bus)
    return SysopConsole(app, asyncio.Event(), model=model)


def connect(app: App, address: str = "192.0.2.7", node: int = 0) -> Connection:
    conn = Connection(id=len(app.listeners.connections) + 1, service="telnet", listener=app.config.listeners[0],
                      address=address, port=40000, local_address="127.0.0.1", local_port=2023, secure=False,
                      since=time.time(), transport=Transport(), node=node)
    app.listeners.connections[conn.id] = conn
    app.bus.publish(ConnectionOpened(conn))
    return conn


def log_event(message: str, level: int = logging.INFO, tag: str = "term") -> LogEvent:
    return LogEvent(tag=tag, level=level, logger="nodes.server", message=message)


def screen(ui: SysopConsole) -> str:
    return "\n".join(render_text(ui, SIZE))


def test_a_flood_of_events_is_drawn_in_one_batch(app: App, ui: SysopConsole, timers: Timers):
    app.nodes = type(app.nodes)(range(1, 501), app.bus)          # 500 nodes
    ui.model.nodes = {r.number: r for r in app.nodes.records()}
    ui.panes[0] = NodesPane(ui, app.nodes.records())
    ui.select(0)
    for round_ in range(10):                                     # 5,000 node changes ...
        for number in range(1, 501):
            app.nodes.update(number, status=NodeStatus.INUSE, user=f"user{number}", activity=f"step {round_}")
    for index in range(LOG_SCROLLBACK + 1000):                   # ... and 6,000 log lines
        app.bus.publish(log_event(f"line {index}"))
    assert len(timers.pending) == 1 and timers.pending[0][0] == REFRESH_INTERVAL
    assert ui.draws == 0                                         # nothing drawn per event
    timers.fire()
    assert ui.draws == 1 and ui.model.flushes == 1
    rows = ui.panes[0].texts()
    assert len(rows) == 500 and "user500" in rows[-1] and "step 9" in rows[-1] and "in use" in rows[0]
    logs = ui.panes[2]
    assert len(logs.walker) == 0                                 # hidden: its batch waits ...
    ui.select(2)                                                 # ... and is applied when shown
    assert len(logs.walker) == LOG_SCROLLBACK and logs.texts()[-1].endswith("line 5999")
    assert logs.texts()[0].endswith("line 1000")                 # the oldest fell off the scroll-back
    app.bus.publish(log_event("one more"))
    assert len(timers.pending) == 1 and ui.draws == 1            # the next batch starts again
    timers.fire()
    assert ui.draws == 2 and logs.texts()[-1].endswith("one more")


def test_nodes_pane_shows_a_caller_and_the_node_row_changes(app: App, ui: SysopConsole, timers: Timers):
    assert "waiting" in screen(ui)
    node = app.nodes.allocate("telnet", "192.0.2.7", conn_id=1)
    timers.fire()
    text = screen(ui)
    assert f"   {node.number}  logging on" in text and "192.0.2.7" in text and "telnet" in text
    app.nodes.update(node.number, status=NodeStatus.INUSE, user="Zaphod", activity="reading mail")
    timers.fire()
    row = next(line for line in render_text(ui, SIZE) if line.startswith(f"   {node.number}  "))
    assert "in use" in row and "Zaphod" in row and "reading mail" in row
    runs = render_runs(ui, SIZE, focus=True)
    assert any(attr == "focus" and "Zaphod" in text for line in runs for attr, text in line)  # row 1 has focus
    press(ui, SIZE, "down")
    runs = render_runs(ui, SIZE, focus=True)
    assert any(attr == "node_inuse" and "Zaphod" in text for line in runs for attr, text in line)


def test_node_row_marks_locked_and_down(app: App):
    record = app.nodes.update(2, locked=True, down_after=True)
    assert node_row(record, 0).startswith("   2  waiting [lock] [down]  -")
    app.nodes.update(3, status=NodeStatus.INUSE, user="Zaphod", since=1000.0)
    assert node_row(app.nodes.get(3), 1000.0 + 3725).endswith(" 1:02:05")


def test_kick_lock_and_down_from_the_nodes_pane(app: App, ui: SysopConsole, timers: Timers):
    node = app.nodes.allocate("telnet", "192.0.2.7", conn_id=1)
    conn = connect(app, node=node.number)
    assert press(ui, SIZE, "k") == []
    assert "Kick the caller off node 1? [y/N]" in screen(ui)
    press(ui, SIZE, "n")
    assert not conn.transport.aborted and "cancelled" in screen(ui)
    press(ui, SIZE, "k", "y")
    assert conn.transport.aborted and "node 1: caller at 192.0.2.7 disconnected" in screen(ui)
    press(ui, SIZE, "down", "l")
    assert app.nodes.get(2).locked and "node 2 locked" in screen(ui)
    press(ui, SIZE, "d")
    assert app.nodes.get(2).status is NodeStatus.OFFLINE
    press(ui, SIZE, "up", "d")
    assert app.nodes.get(1).down_after                          # in use: goes down after logoff
    timers.fire()
    assert "[lock]" in screen(ui) and "offline" in screen(ui)


def test_clients_pane_closes_and_filters_an_address(app: App, ui: SysopConsole, timers: Timers):
    conn = connect(app, "198.51.100.4")
    other = connect(app, "198.51.100.4")
    timers.fire()
    press(ui, SIZE, "2")
    text = screen(ui)
    assert "198.51.100.4:40000" in text and "telnet" in text
    press(ui, SIZE, "c", "y")
    assert conn.transport.aborted and not other.transport.aborted
    press(ui, SIZE, "f")
    assert "Filter 198.51.100.4 in ip.can for" in screen(ui)
    press(ui, SIZE, *["backspace"] * 2, "2", "h", "enter")
    assert other.transport.aborted
    lines = (app.instance.text / "ip.can").read_text().splitlines()
    assert lines[-1].startswith("198.51.100.4\t") and "e=" in lines[-1] and "filtered by the sysop" in lines[-1]
    entry = app.filters.ip.match_ip("198.51.100.4")
    assert entry is not None and 7100 < entry.expires - time.time() <= 7200
    assert "198.51.100.4 filtered in ip.can until" in screen(ui)
    press(ui, SIZE, "f", *["backspace"] * 2, "x", "enter")
    assert "'x'" in screen(ui)                                   # a bad duration is refused, nothing added
    assert (app.instance.text / "ip.can").read_text().splitlines() == lines


def test_logs_pane_filters_colours_and_searches(app: App, ui: SysopConsole, timers: Timers):
    app.bus.publish(log_event("telnet caller arrived", logging.INFO, "term"))
    app.bus.publish(log_event("SMTP ILLEGAL RELAY ATTEMPT", logging.WARNING, "mail"))
    app.bus.publish(log_event("cannot bind", logging.ERROR, "ftp"))
    app.bus.publish(log_event("debug detail", logging.DEBUG, "term"))
    timers.fire()
    press(ui, SIZE, "3")
    text = screen(ui)
    assert all(s in text for s in ("telnet caller arrived", "ILLEGAL RELAY", "cannot bind", "debug detail"))
    assert " mail WARNING SMTP ILLEGAL RELAY ATTEMPT" in text
    attrs = {attr for line in render_runs(ui, SIZE, focus=True) for attr, t in line if "RELAY" in t or "bind" in t}
    assert {"warning", "focus"} <= attrs or {"warning", "error"} <= attrs
    press(ui, SIZE, "s")                                         # server: term
    text = screen(ui)
    assert "telnet caller arrived" in text and "RELAY" not in text and "server: term" in text
    press(ui, SIZE, "v")                                         # level INFO+
    assert "debug detail" not in screen(ui) and "telnet caller arrived" in screen(ui)
    press(ui, SIZE, *["s"] * 6, "v", "v")                        # all servers, ERROR+
    assert screen(ui).count("cannot bind") == 1 and "RELAY" not in screen(ui)
    press(ui, SIZE, "v", "v")                                    # back to DEBUG+
    press(ui, SIZE, "/", *"relay", "enter")
    assert "found 'relay'" in screen(ui)
    logs = ui.panes[2]
    assert "RELAY" in logs.walker.get_focus()[0].original_widget.text and not logs.following
    app.bus.publish(log_event("newer line"))
    timers.fire()
    assert "RELAY" in logs.walker.get_focus()[0].original_widget.text   # scrolled back: focus stays
    press(ui, SIZE, "end")
    assert logs.walker.get_focus()[0].original_widget.text.endswith("newer line")
    press(ui, SIZE, "/", *["backspace"] * 5, *"nowhere", "enter")
    assert "'nowhere' not found" in screen(ui)


def test_log_row_format():
    event = LogEvent(tag="mail", level=logging.WARNING, logger="mail.smtp", message="hello", when=0)
    assert log_row(event) == f"{time.strftime('%H:%M:%S', time.localtime(0))} mail WARNING hello"


def test_stats_and_bans(app: App, ui: SysopConsole, timers: Timers):
    connect(app)
    app.bus.publish(UserLogon(user="Zaphod", number=2, node=1, protocol="telnet", address="192.0.2.7"))
    for _ in range(app.config.server.global_.login.tempban_threshold):
        app.login.failed("203.0.113.9", "telnet", "root")
    timers.fire()
    press(ui, SIZE, "4")
    stats = {line.split("  ")[0].strip(): line.split()[-2:] for line in render_text(ui, SIZE, strip=True)
             if line.strip() and "  " in line}
    assert stats["Logons"] == ["1", "1"] and stats["Connections"] == ["1", "1"]
    assert stats["Temporary bans"] == ["1", "1"] and stats["Hack attempts (hack.log)"] == ["1", "1"]
    press(ui, SIZE, "5")
    assert "203.0.113.9" in screen(ui)
    press(ui, SIZE, "u", "y")
    assert app.login.bans() == [] and "temporary ban of 203.0.113.9 lifted" in screen(ui)
    timers.fire()
    assert "203.0.113.9" not in "\n".join(render_text(ui, SIZE)[:-1])
    press(ui, SIZE, "u")
    assert "[y/N]" not in screen(ui)                              # nothing to lift


def test_quit_asks_then_sets_the_stop_event(ui: SysopConsole):
    press(ui, SIZE, "q")
    assert "Stop the BBS and quit the console? [y/N]" in screen(ui) and not ui.stop.is_set()
    press(ui, SIZE, "n", "q", "y")
    assert ui.stop.is_set() and "stopping the BBS" in screen(ui)


def test_password_notice_stays_until_a_key(ui: SysopConsole):
    ui.announce_password("Sysop", "s3cret")
    assert "Password: s3cret" in screen(ui)
    press(ui, SIZE, "x")
    assert "s3cret" not in screen(ui) and "waiting" in screen(ui)


def test_palette_has_every_attribute_the_panes_use(ui: SysopConsole):
    names = {entry[0] for entry in PALETTE}
    for key in ("1", "2", "3", "4", "5"):
        press(ui, SIZE, key)
        for line in render_runs(ui, SIZE, focus=True):
            for attr, _ in line:
                for layer in getattr(attr, "layers", (attr,)):
                    assert layer is None or layer in names, layer
    assert isinstance(ui.panes[2], LogsPane)


def test_mail_queue_pane_reads_the_outbound_queue(app: App, timers: Timers):
    from bbs.events import MailQueued
    from console.live import mail_queue_reader
    from tests.support import run_async

    async def scenario() -> list[str]:
        read, close = mail_queue_reader(app)
        assert await read() == []                                   # the App's store not open yet: empty
        store = app.mail
        await store.open()
        qid = await store.enqueue("sysop@bbs.test", ["ann@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
        await store.claim(qid)
        await store.retry_later(qid, "451 try later", 0.0)
        model = ConsoleModel(nodes=app.nodes.records(), connections={}, schedule=timers)
        model.attach(app.bus)
        ui = SysopConsole(app, asyncio.Event(), model=model, read_queue=read)
        pane = ui.panes[-1]
        assert pane.title == "Mail" and pane.texts() == []
        app.bus.publish(MailQueued(message_id=str(qid), sender="sysop@bbs.test", recipients=("ann@example.org",)))
        timers.fire()                                               # the batch re-reads the queue
        await asyncio.gather(*ui._tasks)
        press(ui, SIZE, str(len(ui.panes)))
        shown = render_text(ui, SIZE)
        await store.close()
        await close()
        return pane.texts() + shown

    rows = run_async(scenario())
    assert "sysop@bbs.test" in rows[0] and "ann@example.org" in rows[0] and "451 try later" in rows[0]
    assert rows[0].split()[3] == "1"                                # one attempt so far
    assert any("(1 queued)" in line for line in rows[1:])


def test_mail_queue_pane_clears_in_transit_flags(app: App, timers: Timers):
    from console.live import mail_queue_reader
    from tests.support import run_async

    async def scenario() -> tuple[list[str], list[str], str, bool]:
        read, _ = mail_queue_reader(app)
        store = app.mail
        await store.open()
        qid = await store.enqueue("sysop@bbs.test", ["ann@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
        await store.claim(qid)                                      # left in transit, as after a crash
        model = ConsoleModel(nodes=app.nodes.records(), connections={}, schedule=timers)
        ui = SysopConsole(app, asyncio.Event(), model=model, read_queue=read)
        pane = ui.panes[-1]
        press(ui, SIZE, str(len(ui.panes)))
        await pane.reload()
        before = pane.texts()
        press(ui, SIZE, "c")
        asked = "".join(render_text(ui, SIZE))
        press(ui, SIZE, "y")
        while ui._tasks:
            await asyncio.gather(*list(ui._tasks))
        status = "".join(render_text(ui, SIZE))
        [item] = await store.outbound()
        await store.close()
        return before, pane.texts(), asked + status, item.in_transit

    before, after, shown, in_transit = run_async(scenario())
    assert "*" in before[0].split()                                 # the in-transit mark
    assert "*" not in after[0].split() and not in_transit
    assert "Clear the in-transit flags of the mail queue? [y/N]" in shown
    assert "1 queued message(s) no longer marked in transit" in shown


def test_telegram_to_the_user_on_a_node(app: App, timers: Timers):
    from bbs.events import TelegramSent
    from tests.support import run_async

    sent: list[TelegramSent] = []
    app.bus.subscribe(sent.append, TelegramSent)

    async def scenario() -> tuple[str, str]:
        await app.telegram_db.open()
        try:
            model = ConsoleModel(nodes=app.nodes.records(), connections={}, schedule=timers)
            model.attach(app.bus)
            ui = SysopConsole(app, asyncio.Event(), model=model)
            press(ui, SIZE, "t")
            refused = screen(ui)
            app.nodes.allocate("telnet", "192.0.2.7", conn_id=1)
            app.nodes.update(1, status=NodeStatus.INUSE, user="Zaphod", user_number=2)
            timers.fire()
            press(ui, SIZE, "t", *"Dinner is ready", "enter")
            await asyncio.gather(*ui._tasks)
            unread = await app.telegrams.unread(2)
            assert [t.text for t in unread] == ["Dinner is ready"] and unread[0].sender == "Sysop"
            return refused, screen(ui)
        finally:
            await app.telegram_db.close()

    refused, done = run_async(scenario())
    assert "node 1 has no user logged on" in refused
    assert "telegram sent to Zaphod on node 1" in done and sent[0].text == "Dinner is ready"


def test_hidden_panes_apply_one_merged_batch_when_shown(app: App, ui: SysopConsole, timers: Timers):
    from console.model import LOG_SCROLLBACK

    ui.select(0)
    logs = ui.panes[2]
    for index in range(30):                                       # 30 batches while Logs is hidden
        for line in range(300):
            app.bus.publish(log_event(f"batch {index} line {line}"))
        timers.fire()
    assert len(logs.walker) == 0
    ui.select(2)
    assert len(logs.walker) == LOG_SCROLLBACK                     # the scroll-back, in order
    assert logs.texts()[-1].endswith("batch 29 line 299") and logs.texts()[0].endswith("batch 13 line 100")
