"""Mail between the nodes and POP3 (issue 4, "mail sent from a node to a local
user is retrievable over POP3 and vice versa"): a telnet caller sends from the
E-mail menu, the recipient fetches it with `poplib`; a POP3 delete at QUIT is
gone from the caller's mailbox in the node. (SMTP mail read in the node is
tests/integration/test_node_email.py's test_smtp_mail_shows_up_in_the_callers_mailbox.)"""
from __future__ import annotations

import email
import email.policy
import poplib

from tests.integration.test_node_email import (EMAIL_MENU, HOST, SENT_TO_BOB, board, compose,  # noqa: F401
                                               mailbox)
from tests.integration.test_terminal_server import MAIN_MENU, logoff, logon, telnet
from tests.support import BBSProcess

NO_EMAIL = "You have no e-mail"
BODY = ["Meet me in the file area.", "Bring the ANSI art."]


def test_node_mail_is_retrieved_over_pop3_and_pop3_deletes_show_in_the_node(board: BBSProcess):
    alice = telnet(board.ports["telnet"])
    logon(alice, "Alice", "alicepw1")
    alice.send("e")
    alice.expect(EMAIL_MENU)
    compose(alice, "Bob", "From node 1", BODY)
    alice.expect(SENT_TO_BOB)
    alice.expect(EMAIL_MENU)
    alice.send("q")
    alice.expect(MAIN_MENU)
    logoff(alice)

    pop = poplib.POP3("127.0.0.1", board.ports["pop3"], timeout=15)
    try:
        pop.user("Bob")
        pop.pass_("bobpw123")
        count, size = pop.stat()
        assert count == 1 and size > 0
        assert len(pop.uidl()[1]) == 1
        lines = pop.retr(1)[1]
        message = email.message_from_bytes(b"\r\n".join(lines) + b"\r\n", policy=email.policy.default)
        assert message["From"] == f"Alice <Alice@{HOST}>"
        assert message["To"] == f"Bob <Bob@{HOST}>"
        assert message["Subject"] == "From node 1"
        assert message.get_content().replace("\r\n", "\n") == "\n".join(BODY) + "\n"
        assert pop.dele(1).startswith(b"+OK")
        assert len(mailbox(board.root, 3)) == 1               # RFC 1939: deleted only at QUIT
    finally:
        pop.quit()
    assert mailbox(board.root, 3) == []

    bob = telnet(board.ports["telnet"])
    logon(bob, "Bob", "bobpw123")
    bob.send("e")
    bob.expect(EMAIL_MENU)
    bob.send("r")
    bob.expect(NO_EMAIL)
    bob.send("q")
    bob.expect(MAIN_MENU)
    logoff(bob)
