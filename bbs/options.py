"""The ``Options =`` flags each sbbs.ini section knows, with Synchronet's names.

A flag not listed here is a configuration error (a typo would otherwise
silently turn a feature off). Windows-only flags (``MUTE``) are accepted and
have no effect.
"""
from __future__ import annotations

#: [BBS] (terminal server) options, as in Synchronet's sbbs.ini.
BBS_OPTIONS = frozenset({
    "XTRN_MINIMIZED", "AUTO_LOGON", "DEBUG_TELNET", "ALLOW_RLOGIN", "ALLOW_SSH",
    "NO_QWK_EVENTS", "NO_EVENTS", "NO_HOST_LOOKUP", "NO_RECYCLE", "GET_IDENT",
    "NO_TELNET_GA", "NO_SPY_SOCKETS", "HAPROXY_PROTO", "USE_2ND_RLOGIN",
    "NO_DOS", "MUTE", "SSH_ANYAUTH", "DEBUG_RX", "DEBUG_TX",
})

#: [Mail] options: every flag of the Synchronet Mail Server page.
MAIL_OPTIONS = frozenset({
    "USE_SUBMISSION_PORT", "TLS_SUBMISSION", "ALLOW_POP3", "DEBUG_POP3", "TLS_POP3",
    "DEBUG_TX", "DEBUG_RX_HEADER", "DEBUG_RX_BODY", "DEBUG_RX_RSP",
    "ALLOW_RX_BY_NUMBER", "ALLOW_SYSOP_ALIASES", "NO_NOTIFY", "NO_HOST_LOOKUP",
    "USE_TCP_DNS", "NO_SENDMAIL", "ALLOW_RELAY", "SMTP_AUTH_VIA_IP",
    "DNSBL_REFUSE", "DNSBL_IGNORE", "DNSBL_BADUSER", "DNSBL_CHKRECVHDRS",
    "DNSBL_THROTTLE", "DNSBL_SPAMHASH", "SEND_INTRANSIT", "RELAY_TX",
    "RELAY_AUTH_PLAIN", "RELAY_AUTH_LOGIN", "RELAY_AUTH_CRAM_MD5",
    "NO_AUTO_EXEMPT", "NO_RECYCLE", "KILL_READ_SPAM", "MUTE",
})

#: [FTP] options.
FTP_OPTIONS = frozenset({
    "DEBUG_RX", "DEBUG_DATA", "INDEX_FILE", "DEBUG_TX", "ALLOW_QWK",
    "NO_LOCAL_FSYS", "DIR_FILES", "KEEP_TEMP_FILES", "HTML_INDEX_FILE",
    "LOOKUP_PASV_IP", "NO_HOST_LOOKUP", "NO_RECYCLE", "MUTE", "ALLOW_BOUNCE",
})

#: [Services] options.
SERVICES_OPTIONS = frozenset({"NO_HOST_LOOKUP", "NO_RECYCLE", "MUTE"})
