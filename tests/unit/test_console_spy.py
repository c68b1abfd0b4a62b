"""Spy, chat and interrupt: the terminal's hooks (tap, injected keys, break-ins),
bbs.spy's chat and registry, and the console's views and Nodes-pane keys (urwid.testing)."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from urwid.testing import press, render_text

from bbs.app import App
from bbs.errors import BBSError, Reason
from bbs.instance import init_instance, load_config
from bbs.nodetable import NodeStatus
from bbs.spy import ChatSide, ChatState, NodeAccess, SpyRegistry, SysopChat, SysopPaged
from console.live import SysopConsole
from console.model import ConsoleModel
from console.spy import SPY_BACKLOG, SPY_REFRESH, SPY_SLICE, CallerScreen, ChatView, SpyView, key_bytes
from nodes import terminal as t
from nodes.io import Hangup, QueueLink, Terminal
from nodes.screens.chat import _CallerSide, _ring, sysop_chat
from tests.support import run_async, until

SIZE = (120, 30)


class MemoryLink(QueueLink):
    """A caller's link held in memory: what the BBS wrote, keys fed by the test."""

    protocol = "telnet"

    def __init__(self, cols: int = 80, rows: int = 24) -> None:
        super().__init__()
        self.cols, self.rows = cols, rows
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.feed_eof()


class TermAccess(NodeAccess):
    """A node as the console sees it, over a real Terminal (no session around it)."""

    def __init__(self, node: int, term: Terminal, caller: str = "Zaphod") -> None:
        super().__init__()
        self.node, self.term, self._caller = node, term, caller
        self.chats: list[SysopChat] = []
        self.interrupted = 0

    @property
    def charset(self) -> str:
        return self.term.charset

    @property
    def size(self) -> tuple[int, int]:
        return self.term.cols, self.term.rows

    @property
    def caller(self) -> str:
        return self._caller

    def tap(self, sink):
        return self.term.add_tap(sink)

    def inject(self, data: bytes) -> None:
        self.term.inject(data)

    def chat(self, chat: SysopChat) -> None:
        if self.chats and self.chats[-1].state is not ChatState.ENDED:
            raise BBSError(Reason.EXISTS, f"node {self.node} is in a chat with the sysop already")
        self.chats.append(chat)

    def interrupt(self) -> None:
        self.interrupted += 1


class Side(ChatSide):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended_by: list[str] = []
        self.opened_by: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def ended(self, by: str) -> None:
        self.ended_by.append(by)

    def opened(self, alias: str) -> None:
        self.opened_by.append(alias)


def terminal(charset: str = "utf-8", **size) -> tuple[MemoryLink, Terminal]:
    link = MemoryLink(**size)
    term = Terminal(link, asyncio.Event())
    term.ansi = True
    term.set_charset(charset)
    return link, term


# -- the terminal's hooks ----------------------------------------------------------
def test_a_tap_copies_output_until_removed_and_nothing_runs_without_one():
    async def scenario():
        link, term = terminal("cp437")
        assert term._send == link.write                       # nobody spies: the link's own write
        copied: list[bytes] = []
        remove = term.add_tap(copied.append)
        await term.write("\x01hHello ═")
        term.write_raw(b"raw")
        await term.write_bytes(b"ZMODEM data")                 # transfers are not copied
        remove()
        assert term._send == link.write                       # back to no work at all
        await term.write("after")
        assert b"".join(copied) == bytes(link.sent).split(b"ZMODEM")[0]
        assert b"Hello \xcd" in b"".join(copied) and b"after" not in b"".join(copied)

        def broken(data: bytes) -> None:
            raise RuntimeError("console gone")
        term.add_tap(broken)
        await term.write("still served")                      # a failing spy never breaks the caller
        assert link.sent.endswith(b"still served") and term._send == link.write
        term.close()
    run_async(scenario())


def test_injected_keys_are_read_as_the_callers_input():
    async def scenario():
        link, term = terminal()
        line = asyncio.ensure_future(term.getline("> "))
        await asyncio.sleep(0)
        term.inject(b"hi")
        term.inject("é".encode())
        term.inject(b"\x08")                                  # the sysop's backspace
        term.inject(b"!\r")
        assert await line == "hi!"
        term.inject(b"\x1b")                                  # a lone ESC is a whole key
        term.inject(b"\x1b[A")
        assert [await term.getkey(), await term.getkey()] == [t.KEY_ESCAPE, t.KEY_UP]
        term.close()
    run_async(scenario())


def test_a_break_in_runs_at_the_next_prompt_then_the_prompt_comes_back():
    async def scenario():
        link, term = terminal()
        ran: list[str] = []

        async def job() -> bool:
            ran.append("job")
            await term.write("[JOB]")
            assert await term.getline("inner: ") == "x"       # a job may prompt itself
            return True
        term.break_in(job)
        assert await term.getkey(timeout=0.05) is None        # never inside a terminal probe
        assert ran == []
        choice = asyncio.ensure_future(term.hotkey("Choose: ", "AB"))
        await asyncio.sleep(0.01)
        assert ran == ["job"]
        link.feed(b"x\r")
        await asyncio.sleep(0.01)
        assert bytes(link.sent).endswith(b"Choose: ")          # drawn again after the job
        assert bytes(link.sent).count(b"Choose: ") == 2 and b"[JOB]" in link.sent
        link.feed(b"b")
        assert await choice == "B"

        async def interrupt() -> bool:
            raise Hangup("interrupted by the sysop", "bye", logoff=True)
        line = asyncio.ensure_future(term.getline("Name: "))
        await asyncio.sleep(0)
        term.break_in(interrupt)
        with pytest.raises(Hangup) as caught:
            await line
        assert caught.value.logoff and caught.value.reason == "interrupted by the sysop"
        term.close()
    run_async(scenario())


def test_a_pause_prompt_is_drawn_again_after_a_break_in():
    async def scenario():
        link, term = terminal()
        waiting = asyncio.ensure_future(term.pause())
        await asyncio.sleep(0)

        async def job() -> bool:
            await term.write("chat\r\n")
            return True
        term.break_in(job)
        await asyncio.sleep(0.01)
        assert bytes(link.sent).count(b"Hit a key") == 2
        link.feed(b" ")
        await waiting
        term.close()
    run_async(scenario())


def test_a_break_in_that_wrote_nothing_leaves_the_prompt_as_it_was():
    """A chat the sysop gave up before the caller's prompt, or the sysop's
    end of a chat the caller had left already, writes nothing: the prompt
    is not drawn a second time on its own line ("Command: Command: ")."""
    async def scenario():
        link, term = terminal()
        choice = asyncio.ensure_future(term.hotkey("Command: ", "AB"))
        await asyncio.sleep(0)
        late = SysopChat(3, "Sysop", Side())
        late.end("sysop")                                     # gave up waiting for the caller
        term.break_in(lambda: sysop_chat(SimpleNamespace(user=None), late))
        side = _CallerSide(SimpleNamespace(), late)
        side.showing = False                                  # the caller typed /q meanwhile
        term.break_in(side._leave)
        await asyncio.sleep(0.01)
        assert not term._breakins                             # both ran
        assert bytes(link.sent).count(b"Command: ") == 1
        link.feed(b"a")
        assert await choice == "A"
        assert bytes(link.sent).endswith(b"Command: A\r\n")
        term.close()
    run_async(scenario())


def test_a_ringing_page_notices_a_hang_up_or_shutdown_at_once_and_a_key_stops_it():
    """The page rings for page_duration seconds (30 here) on the terminal's
    own key wait: a dropped caller or a shutdown ends it within the first
    second, a key stops the ringing."""
    settings = SimpleNamespace(page_duration=30, page_bell=True)

    def ringing() -> tuple[MemoryLink, Terminal, asyncio.Future]:
        link, term = terminal()
        session = SimpleNamespace(term=term, print=term.write)
        return link, term, asyncio.ensure_future(_ring(session, settings, "Sysop"))

    async def scenario():
        for reason in ("disconnected", "shutdown"):
            link, term, ring = ringing()
            await asyncio.sleep(0.05)
            if reason == "disconnected":
                link.close()                                  # the caller hangs up
            else:
                term.shutdown.set()
            with pytest.raises(Hangup) as caught:
                await asyncio.wait_for(ring, 0.5)
            assert caught.value.reason == reason
            term.close()

        link, term, ring = ringing()
        await asyncio.sleep(1.2)
        link.feed(b"x")
        await asyncio.wait_for(ring, 0.5)
        assert bytes(link.sent).endswith(b" for chat\x07.\r\n")       # one ring, then the key stopped it
        assert not term.keys                                  # the key is taken
        term.close()
    run_async(scenario())


# -- bbs.spy ------------------------------------------------------------------------
def test_sysop_chat_lines_both_ways_and_either_side_ends_it():
    sysop, caller = Side(), Side()
    chat = SysopChat(3, "Sysop", sysop)
    with pytest.raises(BBSError):
        chat.sysop_says("too early")                          # not open before the caller's prompt
    assert chat.open("Zaphod", caller) and sysop.opened_by == ["Zaphod"]
    assert not chat.open("Zaphod", caller)                    # once
    chat.sysop_says("hello\x1b[2J\x01rthere")                 # no escape sequences, no Ctrl-A codes
    chat.caller_says("hi " + "x" * 500)
    assert caller.lines == ["hello[2Jrthere"] and sysop.lines == ["hi " + "x" * 197]
    chat.end("caller")
    chat.end("sysop")                                         # idempotent: the first word stands
    assert chat.state is ChatState.ENDED and chat.ended_by == "caller"
    assert sysop.ended_by == ["caller"] and caller.ended_by == ["caller"]

    late = SysopChat(3, "Sysop", Side())
    late.end("sysop")                                         # the sysop gave up waiting
    assert not late.open("Zaphod", Side())


def test_registry_finds_live_sessions_and_tells_when_they_end():
    async def scenario():
        registry = SpyRegistry()
        _, term = terminal()
        access = TermAccess(4, term)
        unregister = registry.register(access)
        assert registry.get(4) is access and 4 in registry
        unregister()
        assert access.ended.is_set() and 4 not in registry
        with pytest.raises(BBSError) as caught:
            registry.get(4)
        assert caught.value.reason is Reason.NOT_FOUND and "node 4 has no caller" in str(caught.value)
        term.close()
    run_async(scenario())


# -- the console ----------------------------------------------------------------------
def test_keys_the_sysop_types_are_sent_as_a_vt_terminal_sends_them():
    assert key_bytes("a") == b"a" and key_bytes("é") == "é".encode()
    assert key_bytes("enter") == b"\r" and key_bytes("up") == b"\x1b[A" and key_bytes("ctrl c") == b"\x03"
    assert key_bytes("page down") == b"\x1b[6~" and key_bytes("esc") == b"\x1b"
    assert key_bytes("mouse press") is None and key_bytes("f11") is None


def test_caller_screen_is_emulated_at_the_callers_size():
    screen = CallerScreen(20, 5)
    screen.feed("\x1b[2J\x1b[H\x1b[1;34m══ Menu ══\x1b[0m\r\nline 2\r\nline 3\r\nline 4\r\nPrompt: ".encode())
    big = [line for line in screen.render((30, 8), focus=True).text]
    assert len(big) == 8 and all(len(line.decode()) == 30 for line in big)
    assert big[0].decode().startswith("══ Menu ══") and big[4].decode().startswith("Prompt: ")
    small = screen.render((10, 2), focus=True)                # smaller: the rows around the cursor
    assert [line.decode() for line in small.text] == ["line 4    ", "Prompt:   "]
    assert small.cursor == (8, 1)
    screen.resize(40, 10)
    assert screen.size == (40, 10)


@pytest.fixture
def app(tmp_path: Path) -> App:
    init_instance(tmp_path)
    return App(load_config(tmp_path))


def console(app: App) -> SysopConsole:
    model = ConsoleModel(nodes=app.nodes.records(), connections={},
                         schedule=lambda delay, callback: asyncio.get_running_loop().call_later(delay, callback))
    model.attach(app.bus)
    return SysopConsole(app, asyncio.Event(), model=model)


def screen_text(ui: SysopConsole) -> str:
    return "\n".join(render_text(ui, SIZE))


def caller_on_node_1(app: App, charset: str = "cp437") -> tuple[MemoryLink, Terminal, TermAccess]:
    link, term = terminal(charset)
    app.nodes.allocate("telnet", "192.0.2.7", conn_id=1)
    app.nodes.update(1, status=NodeStatus.INUSE, user="Zaphod", user_number=2)
    access = TermAccess(1, term)
    app.spy.register(access)
    return link, term, access


def test_spy_shows_the_callers_screen_and_types_for_the_sysop(app: App, caplog):
    caplog.set_level(logging.INFO, logger="console.spy")

    async def scenario():
        ui = console(app)
        press(ui, SIZE, "s")
        assert "node 1 has no caller" in screen_text(ui)
        link, term, access = caller_on_node_1(app)
        unregister = app.spy.register(access)                     # (again, to unregister it below)
        press(ui, SIZE, "s")
        assert isinstance(ui.frame.body, SpyView)
        text = screen_text(ui)
        assert "Spying on node 1: Zaphod (telnet 192.0.2.7)" in text and "80x24 cp437" in text
        assert "Ctrl-] leaves" in text
        await asyncio.sleep(0)                                     # the view's task starts: it taps
        await term.write("\x01L\x01h\x01bMain menu ═══\r\n\x01cCommand: ")   # CP437 bytes on the wire
        assert b"\xcd\xcd\xcd" in link.sent
        await asyncio.sleep(SPY_REFRESH * 3)
        text = screen_text(ui)
        assert "Main menu ═══" in text and "Command: " in text and ui.draws >= 1
        press(ui, SIZE, "x", "q", "1", "tab", "enter")           # every key is the caller's, none the console's
        assert [await term.getkey() for _ in range(5)] == ["x", "q", "1", "\t", "\r"]
        assert isinstance(ui.frame.body, SpyView) and not ui.stop.is_set()
        press(ui, SIZE, "ctrl ]")
        await asyncio.sleep(0.01)
        assert ui.frame.body is ui.pane and term._send == link.write   # the tap is gone
        assert "stopped spying on node 1" in screen_text(ui)

        press(ui, SIZE, "s")                                       # the caller hangs up while watched
        unregister()
        await asyncio.sleep(0.01)
        assert ui.frame.body is ui.pane and "node 1: the caller has gone" in screen_text(ui)
        assert term._send == link.write

        app.spy.register(TermAccess(1, term))
        press(ui, SIZE, "s")                                       # the console closes while watching
        await asyncio.sleep(0)
        assert term._send != link.write
        ui.close()
        await asyncio.sleep(0.01)
        assert term._send == link.write
        term.close()
    run_async(scenario())
    spied = [r.getMessage() for r in caplog.records if "spies on node 1" in r.getMessage()]
    assert spied[0] == "the local console spies on node 1, Zaphod (telnet 192.0.2.7)"


def test_a_flooding_node_costs_the_console_a_bounded_backlog(app: App):
    async def scenario():
        ui = console(app)
        link, term, access = caller_on_node_1(app, "utf-8")
        press(ui, SIZE, "s")
        await asyncio.sleep(0)
        view = ui.frame.body
        for index in range(2000):                                 # some 100 KB between two redraws
            await term.write(f"line {index:05d} of a long listing ...............................\r\n")
        assert len(link.sent) > 5 * SPY_BACKLOG
        assert sum(map(len, view._pending)) <= SPY_BACKLOG        # only the latest output is kept
        term.write_raw(b"x" * 100_000)                             # one write longer than that
        assert sum(map(len, view._pending)) == SPY_BACKLOG
        await term.write("\x01Lline 01999 of a long listing\r\n")
        await until(lambda: not view._pending and not view._feeding and view._timer is None, poll=0.001)
        lines = view.screen.lines()                                # the latest output is on screen
        assert lines[0].startswith("line 01999 of a long listing") and "x" not in "".join(lines)
        assert view._next_flush > 0                                # the next batch waits its share

        term.write_raw(b"y" * (3 * SPY_SLICE))                      # fed in slices, one per loop turn ...
        await until(lambda: view._feeding, poll=0)   # each turn: all slices can pass in one 1 ms sleep
        await term.write("\x01Llate line\r\n")                     # ... output meanwhile is not forgotten
        await until(lambda: not view._pending and not view._feeding and view._timer is None, poll=0.001)
        assert view.screen.lines()[0].startswith("late line")
        press(ui, SIZE, "ctrl ]")
        await asyncio.sleep(0.01)
        term.close()
    run_async(scenario())


def test_chat_view_answers_a_page_and_either_side_ends_the_chat(app: App):
    async def scenario():
        ui = console(app)
        link, term, access = caller_on_node_1(app)
        app.bus.publish(SysopPaged(1, "Zaphod", "my upload is stuck"))
        await asyncio.sleep(0.3)                                     # one console batch
        text = screen_text(ui)
        assert "node 1: Zaphod pages you: my upload is stuck" in text and "in use [page]" in text
        press(ui, SIZE, "c")
        assert isinstance(ui.frame.body, ChatView)
        chat = access.chats[-1]
        assert "Chat with Zaphod on node 1: waiting for the caller's session" in screen_text(ui)
        assert "[page]" not in "".join(ui.panes[0].texts())         # answered
        press(ui, SIZE, "c")                                          # a key for the chat line, not a second chat
        assert len(access.chats) == 1
        caller = Side()
        assert chat.open("Zaphod", caller)
        assert "Zaphod is in the chat now" in screen_text(ui)
        press(ui, SIZE, "backspace", *"hello", "enter")
        assert caller.lines == ["hello"]
        chat.caller_says("hi, my upload")
        text = screen_text(ui)
        assert "Sysop: hello" in text and "Zaphod: hi, my upload" in text
        press(ui, SIZE, "esc")
        await asyncio.sleep(0.01)
        assert chat.ended_by == "sysop" and caller.ended_by == ["sysop"]
        assert ui.frame.body is ui.pane and "chat with node 1 ended by the sysop" in screen_text(ui)

        press(ui, SIZE, "c")                                          # the caller ends the next one
        chat = access.chats[-1]
        assert chat is not access.chats[0] and chat.open("Zaphod", Side())
        chat.end("caller")
        await asyncio.sleep(0.01)
        assert "chat with node 1 ended by Zaphod" in screen_text(ui)
        term.close()
    run_async(scenario())


def test_log_lines_name_the_console(app: App):
    from console.remote import RemoteSysopConsole
    from console.spy import console_name

    model = ConsoleModel(nodes=app.nodes.records(), connections={}, schedule=lambda delay, callback: None)
    assert console_name(SysopConsole(app, asyncio.Event(), model=model)) == "the local console"
    remote = RemoteSysopConsole(app, asyncio.Event(), model=model)
    assert console_name(remote) == "a remote console"
    remote.sysop = "Sysop on the remote console"
    assert console_name(remote) == "Sysop on the remote console"


def test_interrupt_asks_then_tells_the_session(app: App):
    async def scenario():
        ui = console(app)
        _, term, access = caller_on_node_1(app)
        press(ui, SIZE, "i")
        assert "Interrupt node 1 (log its caller off at the next prompt)? [y/N]" in screen_text(ui)
        press(ui, SIZE, "n")
        assert access.interrupted == 0
        press(ui, SIZE, "i", "y")
        assert access.interrupted == 1
        assert "node 1: the caller is logged off at the next prompt" in screen_text(ui)
        term.close()
    run_async(scenario())
