"""FTP without sockets: the command table, line parsing and reply formats.

Pure functions used by :mod:`ftp.server` (RFC 959, RFC 2228 AUTH/PBSZ/PROT,
RFC 2389 FEAT/OPTS, RFC 2428 EPRT/EPSV, RFC 3659 SIZE/MDTM/REST/MLST, RFC 4217
FTPS). Bytes in, values or text out; tested without a server.
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
import stat
import time

#: RFC 959 leaves the line length open; pyftpdlib and vsftpd take about 4 KB.
#: Longer lines are refused (a path is at most a few hundred bytes).
MAX_COMMAND_LINE = 4096
#: RFC 854: telnet commands that may be embedded in the control stream
#: (ABOR is preceded by IAC IP IAC DM, RFC 959 section 4.1.3).
IAC, DONT, DO, WONT, WILL = 255, 254, 253, 252, 251


class Auth(enum.Enum):
    """What a command needs before it may run."""

    NONE = "none"      #: any time (QUIT, FEAT, AUTH ...)
    USER = "user"      #: after USER (PASS)
    LOGIN = "login"    #: after a successful login


class Arg(enum.Enum):
    """Whether a command takes an argument."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclasses.dataclass(frozen=True)
class CommandSpec:
    """One FTP verb: when it is allowed, its argument, and its help text."""

    verb: str
    auth: Auth
    arg: Arg
    help: str
    sysop: bool = False   #: needs a sysop (level 90+) unless the dir says otherwise
    transfer: bool = False  #: opens the data connection


def _spec(verb: str, auth: Auth, arg: Arg, help: str, **kw) -> CommandSpec:
    return CommandSpec(verb, auth, arg, help, **kw)


_N, _U, _L = Auth.NONE, Auth.USER, Auth.LOGIN
_NO, _OPT, _REQ = Arg.NONE, Arg.OPTIONAL, Arg.REQUIRED

#: The command table. Aliases (XPWD, XCWD ... of RFC 775) map to their verbs.
COMMANDS: dict[str, CommandSpec] = {s.verb: s for s in (
    _spec("USER", _N, _REQ, "USER <name>: log in (anonymous for the Guest account)"),
    _spec("PASS", _U, _OPT, "PASS <password>: your BBS password (guests: your e-mail address)"),
    _spec("ACCT", _L, _OPT, "ACCT <account>: not needed here"),
    _spec("QUIT", _N, _NO, "QUIT: log off"),
    _spec("REIN", _N, _NO, "REIN: log off and start again"),
    _spec("SYST", _N, _NO, "SYST: system type"),
    _spec("FEAT", _N, _NO, "FEAT: list extensions"),
    _spec("OPTS", _N, _REQ, "OPTS UTF8 ON | OPTS MLST facts"),
    _spec("HELP", _N, _OPT, "HELP [command]"),
    _spec("NOOP", _N, _NO, "NOOP: do nothing"),
    _spec("STAT", _N, _OPT, "STAT [path]: session status or a listing"),
    _spec("SITE", _L, _REQ, "SITE HELP | SITE DESC <text> | SITE WHO"),
    _spec("AUTH", _N, _REQ, "AUTH TLS: secure the control connection"),
    _spec("PBSZ", _N, _REQ, "PBSZ 0"),
    _spec("PROT", _N, _REQ, "PROT C|P: clear or private data connections"),
    _spec("CCC", _N, _NO, "CCC: not supported"),
    _spec("PWD", _L, _NO, "PWD: current directory"),
    _spec("CWD", _L, _REQ, "CWD <path>"),
    _spec("CDUP", _L, _NO, "CDUP: parent directory"),
    _spec("LIST", _L, _OPT, "LIST [path]: long listing", transfer=True),
    _spec("NLST", _L, _OPT, "NLST [path]: names", transfer=True),
    _spec("MLSD", _L, _OPT, "MLSD [path]: machine listing", transfer=True),
    _spec("MLST", _L, _OPT, "MLST [path]: facts of one entry"),
    _spec("TYPE", _L, _REQ, "TYPE A|I"),
    _spec("MODE", _L, _REQ, "MODE S"),
    _spec("STRU", _L, _REQ, "STRU F"),
    _spec("SIZE", _L, _REQ, "SIZE <file>"),
    _spec("MDTM", _L, _REQ, "MDTM <file>"),
    _spec("RETR", _L, _REQ, "RETR <file>: download", transfer=True),
    _spec("STOR", _L, _REQ, "STOR <file>: upload", transfer=True),
    _spec("STOU", _L, _OPT, "STOU: upload under a unique name", transfer=True),
    _spec("APPE", _L, _REQ, "APPE <file>: append (resume an upload)", transfer=True),
    _spec("ALLO", _L, _OPT, "ALLO: not needed here"),
    _spec("REST", _L, _REQ, "REST <offset>: restart the next RETR/STOR there"),
    _spec("ABOR", _N, _NO, "ABOR: abort the transfer"),
    _spec("DELE", _L, _REQ, "DELE <file>", sysop=True),
    _spec("RNFR", _L, _REQ, "RNFR <file>", sysop=True),
    _spec("RNTO", _L, _REQ, "RNTO <name>", sysop=True),
    _spec("MKD", _L, _REQ, "MKD <dir>", sysop=True),
    _spec("RMD", _L, _REQ, "RMD <dir>", sysop=True),
    _spec("DESC", _L, _REQ, "DESC <text>: description of your next upload"),
    _spec("PASV", _L, _NO, "PASV: passive data connection (IPv4)"),
    _spec("EPSV", _L, _OPT, "EPSV [ALL]: extended passive data connection"),
    _spec("LPSV", _L, _NO, "LPSV: long passive data connection (IPv4 or IPv6, with its address)"),
    _spec("PORT", _L, _REQ, "PORT h1,h2,h3,h4,p1,p2: active data connection"),
    _spec("EPRT", _L, _REQ, "EPRT |af|address|port|: extended active data connection"),
)}

#: RFC 775 and friends: old spellings clients still send.
ALIASES = {"XPWD": "PWD", "XCWD": "CWD", "XCUP": "CDUP", "XMKD": "MKD", "XRMD": "RMD"}

#: RFC 2389 FEAT lines (RFC 3659 MLST facts: the * marks those we send by default).
MLST_FACTS = ("type", "size", "modify", "perm")
FEATURES = ("AUTH TLS", "PBSZ", "PROT", "EPRT", "EPSV", "MDTM", "SIZE", "REST STREAM",
            "MLST type*;size*;modify*;perm*;", "UTF8", "TVFS")


@dataclasses.dataclass(frozen=True)
class Command:
    """A parsed command line. ``arg`` keeps inner and trailing spaces of file
    names (RFC 959 pathnames may contain them); only the one space after the
    verb is removed."""

    verb: str
    arg: str
    spec: CommandSpec


class CommandError(Exception):
    """A line that is no usable command; ``code`` and ``str()`` make the reply."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def strip_telnet(data: bytes) -> bytes:
    """Remove telnet commands (RFC 854) from a control line.

    ``IAC IAC`` is a literal 0xFF; ``IAC WILL/WONT/DO/DONT x`` and other
    ``IAC x`` commands (IP, DM, sent before ABOR) are dropped, as is a lone
    IAC (whose DM was taken out of band).
    """
    if IAC not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != IAC:
            out.append(byte)
            i += 1
            continue
        nxt = data[i + 1] if i + 1 < len(data) else None
        if nxt == IAC:
            out.append(IAC)
            i += 2
        elif nxt in (WILL, WONT, DO, DONT):
            i += 3
        elif nxt is not None and nxt >= 240:  # IP, DM, AO ... (RFC 854 commands)
            i += 2
        else:  # a lone IAC (its DM went out of band): drop only the IAC
            i += 1
    return bytes(out)


def decode(data: bytes) -> str:
    """Bytes of a path or argument -> text: UTF-8, undecodable bytes kept as
    lone surrogates (so they never match a real name, and are refused as
    names by :func:`bbs.filebase.check_name`)."""
    return data.decode("utf-8", "surrogateescape")


def parse_command(line: bytes) -> Command:
    """Parse one control-connection line (CRLF, LF or nothing at the end).

    Raises :class:`CommandError` (500 syntax, 501 argument, 502 unknown verb).
    """
    line = strip_telnet(line).rstrip(b"\r\n")
    if len(line) > MAX_COMMAND_LINE:
        raise CommandError(500, "Command line too long.")
    if not line.strip():
        raise CommandError(500, "Empty command.")
    if b"\0" in line:
        raise CommandError(501, "NUL in command line.")
    verb_bytes, _, rest = line.lstrip(b" ").partition(b" ")
    verb = verb_bytes.decode("ascii", "replace").upper()
    verb = ALIASES.get(verb, verb)
    spec = COMMANDS.get(verb)
    if spec is None:
        raise CommandError(502, f"Command not implemented: {verb[:16]}.")
    arg = decode(rest)
    if spec.verb != "PASS" and spec.arg is not Arg.REQUIRED:
        arg = arg.strip(" ")
    if spec.arg is Arg.NONE and arg:
        raise CommandError(501, f"{verb} takes no argument.")
    if spec.arg is Arg.REQUIRED and not arg.strip(" "):
        raise CommandError(501, f"Syntax: {spec.help}")
    return Command(verb, arg, spec)


def help_text(verb: str | None = None) -> list[str]:
    """HELP reply lines (214): one command's help, or the list of verbs."""
    if verb:
        spec = COMMANDS.get(ALIASES.get(verb.upper(), verb.upper()))
        return [spec.help] if spec else [f"Unknown command {verb[:16]}."]
    verbs = sorted(COMMANDS)
    return ["The following commands are recognized:"] + [
        " ".join(f"{v:<5}" for v in verbs[i:i + 10]) for i in range(0, len(verbs), 10)]


# -- data connection addresses ----------------------------------------------

def parse_port(arg: str) -> tuple[str, int]:
    """``PORT h1,h2,h3,h4,p1,p2`` (RFC 959 section 4.1.2) -> (ipv4, port).

    Raises ValueError for anything else, or port 0.
    """
    parts = arg.strip().split(",")
    if len(parts) != 6 or not all(p.strip().isdigit() and len(p.strip()) <= 3 for p in parts):
        raise ValueError("PORT needs h1,h2,h3,h4,p1,p2")
    numbers = [int(p) for p in parts]
    if any(n > 255 for n in numbers):
        raise ValueError("PORT numbers are 0-255")
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        raise ValueError("PORT port 0")
    return ".".join(str(n) for n in numbers[:4]), port


def parse_eprt(arg: str) -> tuple[str, int]:
    """``EPRT |1|132.235.1.2|6275|`` (RFC 2428 section 2) -> (address, port).

    The delimiter is the first character (ASCII 33-126). Raises ValueError.
    """
    arg = arg.strip()
    if len(arg) < 2 or not 33 <= ord(arg[0]) <= 126:
        raise ValueError("EPRT needs |af|address|port|")
    fields = arg.split(arg[0])
    if len(fields) != 5 or fields[0] or fields[4]:
        raise ValueError("EPRT needs |af|address|port|")
    af, address, port_text = fields[1:4]
    if af not in ("1", "2"):
        raise ValueError("EPRT address family must be 1 (IPv4) or 2 (IPv6)")
    ip = ipaddress.ip_address(address)  # ValueError when malformed
    if ip.version != (4 if af == "1" else 6):
        raise ValueError("EPRT address does not match its family")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("EPRT port must be 1-65535")
    return str(ip), int(port_text)


def pasv_reply(address: str, port: int) -> str:
    """The 227 reply text (RFC 959 section 4.1.2) for an IPv4 ``address``."""
    h = address.split(".")
    return f"Entering Passive Mode ({h[0]},{h[1]},{h[2]},{h[3]},{port >> 8},{port & 255})."


def lpsv_reply(address: str, port: int) -> str:
    """The 228 reply text (RFC 1639): address family, address length, the
    address's bytes, port length and the port's bytes, for IPv4 or IPv6."""
    packed = ipaddress.ip_address(address).packed
    family = 4 if len(packed) == 4 else 6
    fields = (family, len(packed), *packed, 2, port >> 8, port & 255)
    return f"Entering Long Passive Mode ({','.join(map(str, fields))})."


def epsv_reply(port: int) -> str:
    """The 229 reply text (RFC 2428 section 3)."""
    return f"Entering Extended Passive Mode (|||{port}|)."


# -- listings -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing a listing shows: a library or dir (``is_dir``) or a file.

    ``perm`` holds RFC 3659 section 7.5.5 letters: ``e`` enter, ``l`` list,
    ``r`` retrieve, ``c`` create (upload into), ``a`` append, ``d`` delete,
    ``f`` rename.
    """

    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    perm: str = ""
    owner: str = "bbs"
    description: str = ""


def _ls_time(mtime: float, now: float) -> str:
    """``ls -l`` date: "Mon dd HH:MM" within six months, else "Mon dd  YYYY"."""
    t = time.gmtime(mtime)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[t.tm_mon - 1]
    if abs(now - mtime) < 180 * 86400:
        return f"{month} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{month} {t.tm_mday:2d}  {t.tm_year}"


def list_line(entry: Entry, now: float | None = None) -> str:
    """One ``LIST`` line in the Unix ``ls -l`` format every client parses."""
    now = time.time() if now is None else now
    if entry.is_dir:
        mode = "dr-xr-xr-x" if "c" not in entry.perm else "drwxr-xr-x"
    else:
        mode = stat.filemode(stat.S_IFREG | (0o644 if "d" in entry.perm else 0o444))
    owner = (entry.owner or "bbs").replace(" ", "_")[:10]
    return (f"{mode} 1 {owner:<10} {'bbs':<8} {entry.size:>12} "
            f"{_ls_time(entry.mtime, now)} {entry.name}")


def mlst_facts(entry: Entry, *, cdir: bool = False) -> str:
    """RFC 3659 section 7 facts of one entry, followed by a space and its name."""
    kind = "cdir" if cdir else ("dir" if entry.is_dir else "file")
    facts = [f"type={kind}"]
    if not entry.is_dir:
        facts.append(f"size={entry.size}")
    facts.append("modify=" + time.strftime("%Y%m%d%H%M%S", time.gmtime(entry.mtime)))
    facts.append(f"perm={entry.perm}")
    return ";".join(facts) + "; " + entry.name


def mdtm(mtime: float) -> str:
    """RFC 3659 section 2.3 time-val (UTC)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime))


def index_text(entries: list[Entry]) -> bytes:
    """The ``00index`` file of a dir (``INDEX_FILE``): one line per file with
    its size, upload date and description."""
    lines = []
    for e in entries:
        if e.is_dir:
            continue
        date = time.strftime("%Y-%m-%d", time.gmtime(e.mtime))
        desc = " ".join(e.description.split())
        lines.append(f"{e.name:<24} {e.size:>12} {date}  {desc}".rstrip())
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape") if lines else b""

