"""E-mail screens: read the caller's mailbox (new first), reply, delete, send
to a local user by name or number, send Internet e-mail (into the outbound
queue for SendMail), feedback to the sysop; the new-mail count at logon;
inter-BBS messages (MSP, RFC 1312, through :mod:`nodes.mspclient`).

Storage is the App's :class:`bbs.mailbox.MailStore` (``app.mail``), shared
with the SMTP and POP3 servers: every message is a real RFC 5322 message, so
mail written here can be fetched by POP3 and mail received by SMTP is read
here. The pure helpers (:func:`compose`, :func:`render`, :func:`mailbox_order`,
:func:`user_address`, :func:`parse_internet_address`) are unit-tested.
"""
from __future__ import annotations

import dataclasses
import email.message
import email.policy
import email.utils
import logging
import re
import time
from email.parser import BytesParser
from typing import TYPE_CHECKING, Iterable

from bbs.errors import BBSError, Reason
from bbs.events import MailQueued
from bbs.mailbox import MessageInfo
from bbs.users import FORWARD_SETTING, User
from nodes import editor, mspclient
from nodes import terminal as t

if TYPE_CHECKING:
    from nodes.session import Session

log = logging.getLogger(__name__)

#: Longest subject a caller may type (Synchronet smb LEN_TITLE).
LEN_SUBJECT = 70
#: Longest address a caller may type (RFC 5321 section 4.5.3.1.3: a path is
#: at most 256 octets including the angle brackets).
LEN_ADDRESS = 254

_PARSER = BytesParser(policy=email.policy.default)
# RFC 5321 section 4.1.2, simplified: dot-atom local part (or a few common
# extras) and a domain of labels; a caller types this, not a full mailbox.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- pure helpers --------------------------------------------------------------
def user_address(alias: str, hostname: str) -> str:
    """The Internet address of a local user: ``alias@HostName`` with spaces
    as dots (the Mail Server resolves dots and underscores back to spaces)."""
    local = "".join(c for c in alias.strip().replace(" ", ".") if c.isalnum() or c in "._-+") or "user"
    return f"{local}@{hostname}"


def parse_internet_address(text: str) -> tuple[str, str] | None:
    """``(local, domain)`` of a caller-typed ``user@host``, or None when it
    is not a plausible address (no quoting, no source routes, no spaces)."""
    text = text.strip()
    if not _ADDRESS.fullmatch(text):
        return None
    local, _, domain = text.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local or ".." in domain:
        return None
    return local, domain.lower()


def compose(*, from_name: str, from_addr: str, to_name: str, to_addr: str, subject: str, body: str,
            hostname: str, in_reply_to: str = "", references: str = "", now: float | None = None) -> bytes:
    """An RFC 5322 message (CRLF line ends) from a caller: Date, From, To,
    Subject, Message-ID and, for replies, In-Reply-To/References (RFC 5322
    section 3.6.4). The body is UTF-8 when it is not ASCII (RFC 2045)."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["Date"] = email.utils.formatdate(now, localtime=True)
    msg["From"] = email.utils.formataddr((from_name, from_addr))
    msg["To"] = email.utils.formataddr((to_name, to_addr))
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain=hostname)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = f"{references} {in_reply_to}".strip()
    text = body.replace("\r\n", "\n") + "\n"
    # 7-bit clean on the wire (RFC 2045 section 6.7), whatever the next MTA offers.
    msg.set_content(text, cte=None if text.isascii() else "quoted-printable")
    return msg.as_bytes()


@dataclasses.dataclass(frozen=True)
class Shown:
    """A mailbox message as the reader shows it."""

    from_: str
    to: str
    subject: str
    date: str
    body: str
    reply_address: str
    message_id: str
    references: str


def _text_of(part, default_charset: str) -> str:
    """The decoded text of one MIME part, charset-aware; an unknown or
    missing charset falls back to ``default_charset`` then UTF-8, never raises."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, KeyError, AssertionError):
        pass
    payload = part.get_payload(decode=True) or b""
    for charset in (part.get_content_charset(), default_charset, "utf-8"):
        if not charset:
            continue
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeError):
            continue
    return payload.decode("utf-8", "replace")


def _html_to_text(html: str) -> str:
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    text = re.sub(r"<[^>]*>", "", text)
    import html as html_module
    return html_module.unescape(text)


def _clean(text: str) -> str:
    """Text safe to show: no Ctrl-A codes or escape sequences from the sender."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def render(raw: bytes, received: float = 0.0, default_charset: str = "") -> Shown:
    """Parse a stored message for the reader: header fields decoded (RFC 2047),
    the text/plain body (or text/html made plain), attachments named. Never
    raises: a malformed message shows what could be read."""
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception:  # the email package is lenient; be safe anyway
        return Shown("", "", "", "", raw.decode("utf-8", "replace"), "", "", "")

    def header(name: str) -> str:
        try:
            return " ".join(str(msg.get(name, "") or "").split())
        except Exception:
            return ""

    date = header("Date")
    try:
        when = email.utils.parsedate_to_datetime(date).timestamp() if date else received
    except (TypeError, ValueError, IndexError, OverflowError):
        when = received
    shown_date = time.strftime("%a %b %d %Y %H:%M", time.localtime(when)) if when else date
    body_part = None
    try:
        body_part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        body_part = None
    if body_part is None and not msg.is_multipart() and msg.get_content_maintype() == "text":
        body_part = msg
    if body_part is None:
        body = "(this message has no text part)"
    else:
        body = _text_of(body_part, default_charset)
        if body_part.get_content_subtype() == "html":
            body = _html_to_text(body)
    names = []
    try:
        for part in msg.iter_attachments():
            names.append(part.get_filename() or part.get_content_type())
    except Exception:
        pass
    if names:
        body = body.rstrip("\n") + "\n\n" + "".join(f"[attachment: {n}]\n" for n in names)
    reply_to = header("Reply-To") or header("From")
    reply_address = email.utils.parseaddr(reply_to)[1]
    return Shown(_clean(header("From")), _clean(header("To")), _clean(header("Subject")),
                 shown_date, _clean(body), reply_address, header("Message-ID"), header("References"))


def mailbox_order(infos: Iterable[MessageInfo]) -> list[MessageInfo]:
    """New (unread) messages first, then old ones; each oldest first."""
    infos = list(infos)
    return [m for m in infos if not m.read] + [m for m in infos if m.read]


def reply_subject(subject: str) -> str:
    subject = subject.strip()
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


# -- screens -------------------------------------------------------------------
def _hostname(session: "Session") -> str:
    return session.app.config.server.mail.hostname or session.app.config.server.global_.hostname


def _local_domains(session: "Session") -> set[str]:
    return {h.lower().rstrip(".") for h in (session.app.config.server.mail.hostname,
                                            session.app.config.server.global_.hostname) if h}


async def count_new(session: "Session") -> int:
    """Unread messages in the caller's mailbox (for the logon notice)."""
    return sum(1 for m in await session.app.mail.list(session.user.number) if not m.read)


async def logon_notice(session: "Session") -> None:
    """"You have N new e-mail(s)" at logon; nothing when there are none."""
    try:
        new = await count_new(session)
    except BBSError:
        session.log.exception("cannot count new e-mail")
        return
    if new:
        await session.print(f"\r\n\x01n\x01h\x01yYou have {new} new e-mail{'s' if new != 1 else ''}.\x01n"
                            "\x01c Press \x01hE\x01n\x01c at the main menu to read.\x01n\r\n")


async def read_mail(session: "Session", args: tuple[str, ...]) -> None:
    """The mailbox reader: new first, then old; Next/Prev/Reply/Delete/Quit."""
    session.set_activity("reading e-mail")
    number = session.user.number
    infos = mailbox_order(await session.app.mail.list(number))
    if not infos:
        await session.print("\x01n\x01cYou have no e-mail.\r\n")
        return
    new = sum(1 for m in infos if not m.read)
    await session.print(f"\r\n\x01n\x01h\x01wYour mailbox: \x01y{new} new\x01w, {len(infos)} in all\x01n\r\n")
    default_charset = session.app.config.server.mail.default_charset
    index = 0
    while 0 <= index < len(infos):
        info = infos[index]
        try:
            raw = await session.app.mail.read(number, info.id)
        except BBSError as exc:
            if exc.reason is not Reason.NOT_FOUND:
                raise
            infos.pop(index)  # deleted meanwhile (by POP3, say)
            continue
        shown = render(raw, info.received, default_charset)
        status = "" if info.read else " \x01h\x01y(new)"
        spam = " \x01h\x01r[SPAM]" if info.spam else ""
        await session.term.write(
            f"\r\n\x01n\x01h\x01bE-mail {index + 1} of {len(infos)}{status}{spam}\x01n\r\n"
            f"\x01n\x01cFrom: \x01h\x01g{shown.from_ or info.sender}\x01n\r\n"
            f"\x01n\x01cTo  : \x01h{shown.to}\x01n\r\n"
            f"\x01n\x01cSubj: \x01h\x01w{shown.subject}\x01n\r\n"
            f"\x01n\x01cDate: \x01h{shown.date}\x01n\r\n"
            "\x01n\x01b" + "─" * 40 + "\x01n\r\n")
        body = "\n".join(t.wrap_lines(shown.body.rstrip("\n"), max(20, session.term.cols - 1)))
        await session.term.page(body + "\n")
        if not info.read:
            await session.app.mail.mark_read(number, [info.id])
            infos[index] = dataclasses.replace(info, read=True)
        choice = await session.term.hotkey(
            f"\x01n\x01c[\x01h{index + 1}\x01n\x01c] \x01hN\x01n\x01cext \x01hP\x01n\x01crev \x01hR\x01n\x01ceply "
            "\x01hD\x01n\x01celete \x01hQ\x01n\x01cuit: \x01n", "NPRDQ", "N")
        if choice == "N":
            index += 1
        elif choice == "P":
            index = max(0, index - 1)
        elif choice == "Q":
            return
        elif choice == "D":
            if await session.term.yesno("Delete this e-mail", True):
                await session.app.mail.delete(number, [info.id])
                infos.pop(index)
                await session.print("\x01n\x01cDeleted.\r\n")
        elif choice == "R":
            await reply(session, info, shown)
            index += 1
    await session.print("\x01n\x01cNo more e-mail.\r\n")


async def reply(session: "Session", info: MessageInfo, shown: Shown) -> None:
    """Reply to a message: to the sending user for local mail, else to its
    Reply-To/From address through the outbound queue."""
    author = shown.from_ or info.sender
    if info.from_user:
        try:
            to_user = await session.app.users.get(info.from_user)
        except BBSError:
            await session.print("\x01n\x01h\x01rThe sender's account is gone.\x01n\r\n")
            return
        target: User | str = to_user
    elif shown.reply_address and parse_internet_address(shown.reply_address):
        target = shown.reply_address
    else:
        await session.print("\x01n\x01h\x01rThis message has no address to reply to.\x01n\r\n")
        return
    name = email.utils.parseaddr(author)[0] or author
    await send(session, target, subject=reply_subject(shown.subject), quoted=editor.quote(shown.body, name),
               in_reply_to=shown.message_id, references=shown.references)


async def resolve_recipient(session: "Session", text: str) -> User | str | None:
    """What a caller typed at "To:": a local user (name, number, or an
    address at this BBS's host name) or an Internet address. Tells the
    caller and returns None when it is neither."""
    text = t.printable(text).strip()
    if "@" in text:
        parsed = parse_internet_address(text)
        if parsed is None:
            await session.print("\x01n\x01h\x01rThat is not an e-mail address (user@host).\x01n\r\n")
            return None
        local, domain = parsed
        if domain not in _local_domains(session):
            return text
        text = local  # one of ours: deliver locally
    for candidate in dict.fromkeys((text, text.replace(".", " "), text.replace("_", " "))):
        try:
            return await session.app.users.find(candidate)
        except BBSError as exc:
            if exc.reason is not Reason.NOT_FOUND:
                raise
    await session.print("\x01n\x01h\x01rNo such user.\x01n\r\n")
    return None


async def send(session: "Session", target: User | str, *, subject: str = "", quoted: list[str] | None = None,
               in_reply_to: str = "", references: str = "", feedback: bool = False) -> bool:
    """Ask the subject, run the line editor, then store the message: in the
    local user's mailbox (or their forwarding address) or in the outbound
    queue for an Internet address. Returns True when something was sent."""
    user = session.user
    to_name = target.alias if isinstance(target, User) else target
    session.set_activity("sending feedback" if feedback else "sending e-mail")
    await session.print(f"\x01n\x01cTo: \x01h{to_name}\x01n\r\n")
    subject = t.printable(await session.term.getline("\x01n\x01cSubject: \x01h", maxlen=LEN_SUBJECT,
                                                     default=subject[:LEN_SUBJECT])).strip()
    if not subject:
        await session.print("\x01n\x01cAborted.\r\n")
        return False
    body = await editor.edit(session, quoted=quoted)
    if body is None:
        await session.print("\x01n\x01cE-mail aborted; nothing sent.\r\n")
        return False
    hostname = _hostname(session)
    sender = user_address(user.alias, hostname)
    forward = ""
    if isinstance(target, User):
        if (target.settings or {}).get(FORWARD_SETTING) and "@" in target.email:
            forward = target.email
        to_addr = user_address(target.alias, hostname)
    else:
        to_addr = target
    raw = compose(from_name=user.alias, from_addr=sender, to_name=to_name if isinstance(target, User) else "",
                  to_addr=to_addr, subject=subject, body=body, hostname=hostname,
                  in_reply_to=in_reply_to, references=references)
    try:
        if isinstance(target, User) and not forward:
            await session.app.mail.deliver([target.number], raw, sender=sender, recipient=to_addr,
                                           from_user=user.number)
            where = f"to {target.alias}"
        else:
            destination = forward or to_addr
            qid = await session.app.mail.enqueue(sender, [destination], raw, from_user=user.number)
            session.app.bus.publish(MailQueued(str(qid), sender, (destination,)))
            where = f"to {destination} (queued for delivery)"
    except BBSError as exc:
        await session.print(f"\x01n\x01h\x01rNot sent: {exc}.\x01n\r\n")
        return False
    session.log.info("%s sent e-mail %s", user.alias, where)
    session.user = await session.app.users.add_stats(user.number, emails=1)
    await session.print(f"\x01n\x01h\x01g{'Feedback' if feedback else 'E-mail'} sent {where}.\x01n\r\n")
    return True


async def send_mail(session: "Session", args: tuple[str, ...]) -> None:
    """Send e-mail: to a local user by name or number, or to ``user@host``."""
    text = await session.term.getline("\x01n\x01cSend e-mail to (name, number or user@host): \x01h",
                                      maxlen=LEN_ADDRESS)
    if not text.strip():
        return
    target = await resolve_recipient(session, text)
    if target is not None:
        await send(session, target)


async def send_netmail(session: "Session", args: tuple[str, ...]) -> None:
    """Send Internet e-mail to ``user@host`` (the outbound queue)."""
    text = t.printable(await session.term.getline("\x01n\x01cInternet address (user@host): \x01h",
                                                  maxlen=LEN_ADDRESS)).strip()
    if not text:
        return
    if "@" not in text:
        await session.print("\x01n\x01h\x01rThat is not an e-mail address (user@host).\x01n\r\n")
        return
    target = await resolve_recipient(session, text)
    if target is not None:
        await send(session, target)


async def sysop_user(session: "Session") -> User | None:
    """The sysop's account: the user named like [System] Operator, else #1."""
    for key in (session.system.operator, "1"):
        try:
            return await session.app.users.find(key)
        except BBSError as exc:
            if exc.reason is not Reason.NOT_FOUND:
                raise
    return None


async def feedback(session: "Session", args: tuple[str, ...]) -> None:
    """Feedback: e-mail to the sysop."""
    sysop = await sysop_user(session)
    if sysop is None:
        await session.print("\x01n\x01h\x01rThis BBS has no sysop account to write to.\x01n\r\n")
        return
    await send(session, sysop, subject="Feedback", feedback=True)


async def inter_bbs(session: "Session", args: tuple[str, ...]) -> None:
    """Send an inter-BBS message (MSP, RFC 1312) to ``user@host[:port]`` and
    show the other side's ``+``/``-`` answer."""
    session.set_activity("sending an inter-BBS message")
    text = t.printable(await session.term.getline("\x01n\x01cSend a message to (user@bbs.host[:port]): \x01h",
                                                  maxlen=LEN_ADDRESS)).strip()
    if not text:
        return
    try:
        target = mspclient.parse_target(text)
    except mspclient.MSPError as exc:
        await session.print(f"\x01n\x01h\x01r{exc}.\x01n\r\n")
        return
    message = t.printable(await session.term.getline("\x01n\x01cMessage: \x01h", maxlen=200)).strip()
    if not message:
        await session.print("\x01n\x01cNothing sent.\r\n")
        return
    try:
        data = mspclient.format_message(target.user, message, session.user.alias,
                                        sender_term=f"node{session.node}", cookie=mspclient.make_cookie())
        await session.print(f"\x01n\x01cSending to \x01h{target.user}\x01n\x01c at \x01h{target.host}"
                            f"\x01n\x01c port {target.port}...\x01n\r\n")
        ok, reason = await mspclient.send(target.host, target.port, data)
    except mspclient.MSPError as exc:
        await session.print(f"\x01n\x01h\x01rNot sent: {exc}.\x01n\r\n")
        return
    session.log.info("%s sent an MSP message to %s@%s:%d: %s", session.user.alias, target.user, target.host,
                     target.port, "accepted" if ok else f"refused ({reason})")
    if ok:
        await session.print(f"\x01n\x01h\x01g+ Message delivered to {target.user}@{target.host}"
                            f"{': ' + reason if reason else '.'}\x01n\r\n")
    else:
        await session.print(f"\x01n\x01h\x01r- Refused by {target.host}: {reason}.\x01n\r\n")


SCREENS = {
    "msp_send": inter_bbs,
    "email_read": read_mail, "email_send": send_mail, "email_netmail": send_netmail,
    "email_feedback": feedback,
}
