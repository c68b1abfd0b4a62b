"""A BBS instance directory and its whole configuration.

An instance (like Synchronet's ``/sbbs``) holds ``ctrl/`` (configuration),
``text/`` (display files and .can filters), ``data/`` (databases, logs,
keys) and the file library folders. :func:`init_instance` creates one from
the shipped defaults, which are never edited in place; :func:`load_config`
parses all of ``ctrl/`` once into frozen objects.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

from bbs.boardconf import FileAreas, MsgAreas, SystemConfig, load_files, load_msgs, load_system
from bbs.chatconf import ChatConfig, load_chat
from bbs.config import ServerConfig, load_server_config
from bbs.errors import ConfigError
from bbs.ini import IniFile, parse_ini
from bbs.listenconf import ListenerConfig, build_listeners, check_conflicts
from bbs.liveconf import read_optional
from bbs.servicesconf import build_service_listeners
from bbs.textconf import TextConfig, load_text
from bbs.xtrnconf import XtrnConfig, load_xtrn

#: Environment variable naming the instance directory (default ~/bbs).
HOME_ENV = "BBS_HOME"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / "bbs")


def shipped_dir(name: str) -> Path:
    """The shipped ``ctrl`` or ``text`` folder: beside the source tree when run
    from a checkout (or an editable install), else under ``<prefix>/share/bbs``."""
    source = Path(__file__).resolve().parent.parent / name
    if (source / ".shipped").exists():
        return source
    installed = Path(sys.prefix) / "share" / "bbs" / name
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"shipped {name}/ not found (looked in {source} and {installed})")


@dataclasses.dataclass(frozen=True)
class Instance:
    root: Path

    @property
    def ctrl(self) -> Path:
        return self.root / "ctrl"

    @property
    def text(self) -> Path:
        return self.root / "text"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    def exists(self) -> bool:
        return (self.ctrl / "sbbs.ini").is_file()


def init_instance(root: Path) -> list[Path]:
    """Create (or complete) an instance at ``root`` from the shipped defaults.

    Copies every shipped ctrl/ and text/ file that the instance lacks (never
    overwrites a sysop's file) and creates data/. Returns the files created.
    """
    instance = Instance(root)
    created: list[Path] = []
    for name in ("ctrl", "text"):
        source = shipped_dir(name)
        for path in sorted(source.rglob("*")):
            if path.name == ".shipped" or path.is_dir():
                continue
            target = root / name / path.relative_to(source)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                created.append(target)
    for folder in (instance.data, instance.logs):
        folder.mkdir(parents=True, exist_ok=True)
    return created


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything in ctrl/, parsed and validated."""

    instance: Instance
    server: ServerConfig
    system: SystemConfig
    msgs: MsgAreas
    files: FileAreas
    listeners: tuple[ListenerConfig, ...]
    warnings: tuple[str, ...]
    #: Optional files (absent: these defaults), re-read while running (bbs.liveconf).
    xtrn: XtrnConfig = XtrnConfig()
    text_sections: TextConfig = TextConfig()
    chat: ChatConfig = ChatConfig()

    def make_folders(self) -> None:
        """Create the folder of every file dir (file.ini) that does not exist
        yet, so an upload (FTP, nodes) into a newly configured dir has its
        folder: at `bbs init`, at start-up and whenever a new configuration
        replaces the running one (recycle, start, re-reading the areas)."""
        for folder in (d.path for d in self.files.dirs):
            folder.mkdir(parents=True, exist_ok=True)


#: The optional ctrl/ files nodes re-read when they change:
#: file name -> (Config attribute, parser, value when the file is absent).
LIVE_FILES = {"xtrn.ini": ("xtrn", load_xtrn, XtrnConfig()), "text.ini": ("text_sections", load_text, TextConfig()),
              "chat.ini": ("chat", load_chat, ChatConfig())}


def _unused_warnings(ini: IniFile) -> list[str]:
    return [f"{ini.path}:{value.line}: unknown key {value.key} in [{section.name or 'root'}] (ignored)"
            for section, value in ini.unused()]


def load_config(root: Path) -> Config:
    """Parse ctrl/sbbs.ini, main.ini, msgs.ini, file.ini, services.ini and
    the optional xtrn.ini, text.ini and chat.ini of ``root``.

    Raises ConfigError (``path:line: what``) for the first problem found.
    Unknown keys are not errors (Synchronet ignores them) but are returned as
    warnings, since they are usually typos.
    """
    instance = Instance(root)
    if not instance.exists():
        raise ConfigError(instance.ctrl / "sbbs.ini", None,
                          "not found: create the instance with `bbs init` first")
    inis = {name: parse_ini(instance.ctrl / name) for name in ("sbbs.ini", "main.ini", "msgs.ini", "file.ini")}
    server = load_server_config(inis["sbbs.ini"], root)
    system = load_system(inis["main.ini"])
    msgs = load_msgs(inis["msgs.ini"])
    files = load_files(inis["file.ini"], root)
    services_path = instance.ctrl / "services.ini"
    if services_path.exists():
        inis["services.ini"] = parse_ini(services_path)
    listeners = build_listeners(server) + tuple(
        build_service_listeners(inis.get("services.ini"), server, services_path))
    check_conflicts(list(listeners))
    live = {}
    for name, (attr, parse, default) in LIVE_FILES.items():
        live[attr], ini = read_optional(instance.ctrl / name, parse, default, root)
        if ini is not None:
            inis[name] = ini
    warnings = [w for ini in inis.values() for w in _unused_warnings(ini)] + list(live["text_sections"].warnings)
    return Config(instance, server, system, msgs, files, listeners, tuple(warnings), **live)
