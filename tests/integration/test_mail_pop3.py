"""POP3 and POP3S with poplib and curl against the whole App: every command,
APOP, STLS, #nospam, deletes only at QUIT, mail from SMTP retrievable."""
from __future__ import annotations

import poplib
import shutil
import smtplib
import socket
import subprocess

import pytest

from tests.integration.mailsupport import PASSWORD, MailServer, client_tls, mail_instance

TIMEOUT = 15
MESSAGE = b"From: bob@example.org\r\nSubject: Note %d\r\n\r\nline one\r\n.dotted\r\nline three\r\n"


@pytest.fixture
def server(tmp_path):
    root = mail_instance(tmp_path / "bbs", AllowCramMD5="true")
    srv = MailServer(root).start()
    srv.alice = srv.add_user("Alice")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=TIMEOUT) as client:
        for n in range(3):
            client.sendmail("bob@example.org", ["alice@bbs.test"], MESSAGE % n)
    yield srv
    srv.stop()


def login(srv, name="Alice") -> poplib.POP3:
    pop = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=TIMEOUT)
    pop.user(name)
    pop.pass_(PASSWORD)
    return pop


def test_stat_list_uidl_retr_top_noop(server):
    pop = login(server)
    count, size = pop.stat()
    infos = server.mailbox(server.alice.number)
    assert count == 3 and size == sum(m.size for m in infos)
    assert [int(line.split()[1]) for line in pop.list()[1]] == [m.size for m in infos]
    assert [line.split()[1].decode() for line in pop.uidl()[1]] == [str(m.id) for m in infos]
    assert pop.uidl(2).split()[2].decode() == str(infos[1].id)
    lines = pop.retr(2)[1]
    assert b"Subject: Note 1" in lines and b".dotted" in lines and lines[-1] == b"line three"
    top = pop.top(1, 1)[1]
    assert top[-2:] == [b"", b"line one"]
    assert pop.noop().startswith(b"+OK")
    with pytest.raises(poplib.error_proto):
        pop.retr(9)
    pop.quit()
    assert server.mailbox(server.alice.number)[1].read      # RETR marks it read


def test_deletes_apply_only_at_quit_and_rset_undoes(server):
    pop = login(server)
    pop.dele(1)
    with pytest.raises(poplib.error_proto):
        pop.retr(1)                                          # marked: gone for this session
    pop.rset()
    pop.dele(2)
    pop.sock.close()                                         # drop without QUIT: nothing deleted
    pop.file.close()
    assert len(server.mailbox(server.alice.number)) == 3
    pop = login(server)
    pop.dele(2)
    pop.quit()
    assert [m.subject for m in server.mailbox(server.alice.number)] == ["Note 0", "Note 2"]


def test_read_ahead_gives_each_message_its_own_bytes(server):
    # 120 more messages, sizes varied (some over the read-ahead byte budget):
    # in-order RETRs are served from batches; TOP, DELE, RSET and jumps
    # in between must still give each number its own message.
    store = server.store()
    sizes = [40, 3000, 200_000, 700_000, 90, 5000] * 20
    for n, size in enumerate(sizes, 4):
        body = (b"%d " % n * 16 + b"\r\n") * (size // 70) + b".%d\r\n" % n
        server.call(store.deliver([server.alice.number], b"Subject: Bulk %d\r\n\r\n%s" % (n, body)))
    server.call(store.close())

    def check(pop, n):
        lines = pop.retr(n)[1]
        if n <= 3:
            assert b"Subject: Note %d" % (n - 1) in lines and lines[-1] == b"line three", n
        else:
            assert lines[0] == b"Subject: Bulk %d" % n and lines[-1] == b".%d" % n, n

    pop = login(server)
    try:
        for n in range(1, 60):
            if n == 22:
                with pytest.raises(poplib.error_proto):
                    pop.retr(22)                            # deleted while read ahead
                continue
            check(pop, n)
            if n == 20:
                assert pop.top(25, 0)[1][0] == b"Subject: Bulk 25"
                pop.dele(22)
            if n == 30:
                pop.rset()
                check(pop, 22)
        check(pop, 100)
        check(pop, 7)
        for n in range(101, len(sizes) + 4):
            check(pop, n)
        pop.quit()
    finally:
        pop.close()


def test_wrong_password_and_apop(server):
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    pop.user("Alice")
    with pytest.raises(poplib.error_proto):
        pop.pass_("wrong")
    with pytest.raises(poplib.error_proto):
        pop.apop("Alice", "wrong")
    pop.apop("Alice", PASSWORD)
    assert pop.stat()[0] == 3
    pop.quit()


def test_one_session_per_mailbox(server):
    first = login(server)
    second = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    second.user("Alice")
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        second.pass_(PASSWORD)
    second.quit()
    first.quit()


def test_nospam_hides_spam_tagged_mail(server):
    store = server.store()
    server.call(store.deliver([server.alice.number], b"Subject: buy now\r\n\r\nspam\r\n", spam=True))
    server.call(store.close())
    assert login(server).stat()[0] == 4
    pop = login(server, "Alice#nospam")
    assert pop.stat()[0] == 3
    pop.quit()


def test_stls_and_pop3s(server):
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    assert "STLS" in pop.capa()
    pop.stls(context=client_tls())
    pop.user("Alice")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 3
    pop.quit()
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=client_tls(), timeout=TIMEOUT)
    assert "STLS" not in pop.capa()
    pop.user("Alice")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 3
    pop.quit()


def test_junk_and_long_lines_keep_the_session_usable(server):
    sock = socket.create_connection(("127.0.0.1", server.ports["pop3"]), timeout=TIMEOUT)
    try:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        sock.sendall(b"STAT\r\nBOGUS\x00\r\n" + b"A" * (1024 * 1024) + b"\r\nUSER Alice\r\n")
        replies = [reader.readline() for _ in range(4)]
        assert [r[:4] for r in replies] == [b"-ERR", b"-ERR", b"-ERR", b"+OK\r"]
        reader.close()
    finally:
        sock.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_pop3_and_pop3s(server):
    for url in (f"pop3://127.0.0.1:{server.ports['pop3']}/1",
                f"pop3s://127.0.0.1:{server.ports['pop3s']}/2"):
        result = subprocess.run(["curl", "-s", "-k", "--user", f"Alice:{PASSWORD}", url],
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert b"Subject: Note" in result.stdout and b"line three" in result.stdout
