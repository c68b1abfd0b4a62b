"""Bounce messages: RFC 3464 delivery status notifications built by SendMail.

:func:`build_dsn` is pure: the failed recipients, why, and the original
message in; the raw bytes of a ``multipart/report; report-type=
delivery-status`` message out, with

1. a human-readable part quoting each peer's reply (what the sender sees);
2. the ``message/delivery-status`` part (RFC 3464 2.2/2.3: Reporting-MTA,
   Arrival-Date, then per recipient Final-Recipient, Action: failed, Status,
   Remote-MTA, Diagnostic-Code, Last-Attempt-Date);
3. the original header (``text/rfc822-headers``, RFC 6522 / 3462), never the
   body, so a bounce stays small.

Bounces are sent with the null reverse-path ``<>`` (RFC 5321 4.5.5), and a
message whose own sender is ``<>`` is never bounced (no bounce loops).
"""
from __future__ import annotations

import dataclasses
import email.utils
import re
import time
import uuid

from mail.smtpclient import normalize_line_endings

#: Display name and local part of the bounce sender (the usual MTA convention).
MAILER_DAEMON = "MAILER-DAEMON"
BOUNCE_FROM_NAME = "Mail Delivery Subsystem"
#: Longest part of the original header returned (RFC 3462 allows only the header).
MAX_RETURNED_HEADER = 64 * 1024

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why one recipient failed for good.

    ``reply`` is the peer's reply text (``550 5.1.1 No such user``) or our
    own diagnosis (DNS, connection); ``remote_mta`` the host that said it
    ('' when no host answered); ``smtp`` whether ``reply`` came from a peer
    (Diagnostic-Code type ``smtp``) rather than from us.
    """

    recipient: str
    reply: str
    remote_mta: str = ""
    smtp: bool = True


def status_code(reply: str) -> str:
    """The RFC 3463 status of a reply: the enhanced code it carries
    (``550 5.1.1 No such user`` -> ``5.1.1``); else ``5.0.0`` for a permanent
    (5xx or non-SMTP) failure and ``4.4.7`` ("delivery time expired") for a
    temporary one that used up the retries."""
    match = _STATUS.search(reply[4:] if reply[:3].isdigit() else reply)
    if match:
        return ".".join(match.groups())
    return "4.4.7" if reply[:1] == "4" else "5.0.0"


def _header_part(raw: bytes) -> bytes:
    data = normalize_line_endings(raw)
    end = data.find(b"\r\n\r\n")
    header = data if end < 0 else data[:end + 2]
    return header[:MAX_RETURNED_HEADER]


def _original_subject(raw: bytes) -> str:
    from bbs.mailbox import header_fields
    return header_fields(raw)[2]


def build_dsn(*, original: bytes, sender: str, failures: list[Failure], reporting_mta: str,
              arrival: float, queue_id: int, attempts: int, now: float | None = None,
              expired: bool = False) -> bytes:
    """The raw bounce for ``original`` (queued at ``arrival``, queue id
    ``queue_id``) telling ``sender`` that ``failures`` could not be delivered.

    ``expired`` says the retries ran out (MaxDeliveryAttempts) rather than a
    peer refusing for good. Never raises for odd input: unknown fields are
    left out.
    """
    now = time.time() if now is None else now
    subject = _original_subject(original)
    boundary = f"=_bounce_{uuid.uuid4().hex}"
    hostname = reporting_mta or "localhost"
    why = (f"after {attempts} delivery attempt(s) the message could not be delivered"
           if expired else "the receiving mail server refused it permanently")
    human = [
        f"This is the mail system at {hostname}.",
        "",
        f"Your message could not be delivered to the recipient(s) below: {why}.",
        "",
    ]
    for failure in failures:
        host = f" ({failure.remote_mta} said)" if failure.remote_mta else ""
        human.append(f"<{failure.recipient}>{host}:")
        human.append(f"    {failure.reply}")
        human.append("")
    human.append(f"Message #{queue_id}, queued {email.utils.formatdate(arrival, localtime=True)}.")
    status = [f"Reporting-MTA: dns; {hostname}",
              f"X-Queue-ID: {queue_id}",
              f"Arrival-Date: {email.utils.formatdate(arrival, localtime=True)}",
              ""]
    for failure in failures:
        code = status_code(failure.reply)
        status += [f"Final-Recipient: rfc822; {failure.recipient}",
                   "Action: failed",
                   f"Status: {code}"]
        if failure.remote_mta:
            status.append(f"Remote-MTA: dns; {failure.remote_mta}")
        kind = "smtp" if failure.smtp else "X-pybbs"
        status.append(f"Diagnostic-Code: {kind}; {_one_line(failure.reply)}")
        status.append(f"Last-Attempt-Date: {email.utils.formatdate(now, localtime=True)}")
        status.append("")
    headers = [
        f"From: {BOUNCE_FROM_NAME} <{MAILER_DAEMON}@{hostname}>",
        f"To: <{sender}>",
        f"Subject: Undeliverable mail: {_one_line(subject)}" if subject else "Subject: Undeliverable mail",
        f"Date: {email.utils.formatdate(now, localtime=True)}",
        f"Message-ID: <{uuid.uuid4().hex}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    parts = [
        "\r\n".join(headers), "",
        "This is a MIME-encapsulated delivery status notification.", "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Description: Notification", "",
        "\r\n".join(human), "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report", "",
        "\r\n".join(status),
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "Content-Description: Undelivered message header", "",
    ]
    text = "\r\n".join(parts).encode("utf-8") + b"\r\n"
    return text + _header_part(original) + f"\r\n--{boundary}--\r\n".encode()


def _one_line(text: str) -> str:
    return " ".join(text.split())
