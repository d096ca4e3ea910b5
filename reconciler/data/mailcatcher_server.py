"""A stdlib-only SMTP sink: authenticated environments hand it mail, it stores each message as a file.

This file runs inside the catcher container with the environments' own Odoo image (python3, no
third-party packages, no registry), so it imports nothing outside the standard library and nothing
from the `reconciler` package. It never relays: the only thing it does with a message is write it to
`<spool>/<env>/<time>-<n>.eml` (temp file + rename, so readers never see half a message).

    python3 mailcatcher_server.py --spool /srv/mail --credentials /etc/odooops-mail/credentials.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Environment names are DNS labels (reconciler.core.naming); anything else never becomes a path.
ENV_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Envelope addresses: no spaces or angle brackets, so they cannot break the stored headers.
ADDRESS = re.compile(r"^[^\s<>]{0,320}$")
_COUNTER = itertools.count(1)


def log(message: str) -> None:
    # One line per event on stdout, which `docker logs` keeps; message contents are never logged.
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", flush=True)


@dataclass
class Config:
    spool: Path
    credentials: Path
    max_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    quota: int = 1000
    idle_timeout: float = 300.0
    max_sessions: int = 100
    max_auth_failures: int = 3
    hostname: str = "odooops-mail-catcher"


@dataclass
class Credentials:
    """{user: sha256 hex of the password}, re-read whenever the file's identity changes."""

    path: Path
    _stamp: tuple[int, int, int] | None = None
    _users: dict[str, str] = field(default_factory=dict)

    def users(self) -> dict[str, str]:
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._users = None, {}
            return self._users
        # The platform replaces the file by rename: a new inode, so this catches every update.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                self._users = {str(k): str(v).lower() for k, v in data.items()} if isinstance(data, dict) else {}
            except (OSError, ValueError) as exc:
                log(f"credentials unreadable ({exc}); refusing every login until fixed")
                self._users = {}
            self._stamp = stamp
        return self._users

    def check(self, user: str, password: str) -> bool:
        expected = self.users().get(user)
        given = hashlib.sha256(password.encode("utf-8", "surrogateescape")).hexdigest()
        # Compare even for unknown users so timing does not tell which environments exist.
        return hmac.compare_digest(given, expected or "0" * 64) and expected is not None


class Draft:
    """A message being received, streamed to a hidden temp file (memory stays flat whatever the
    size and the number of sessions) and renamed into place only when complete."""

    def __init__(self, config: Config, env: str, mail_from: str, rcpts: list[str], peer: str, helo: str) -> None:
        self.config = config
        self.box = config.spool / env
        self.box.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tmp = self.box / f".tmp-{os.getpid()}-{next(_COUNTER)}"
        self.fh = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit() or abort()
        os.fchmod(self.fh.fileno(), 0o600)
        received = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        # The envelope goes into trace headers, as a real MTA adds them: Bcc recipients exist only
        # in the envelope, and readers need them.
        head = (f"Return-Path: <{mail_from}>\r\n"
                f"X-OdooOps-Environment: {env}\r\n"
                f"X-OdooOps-Envelope-To: {', '.join(rcpts)}\r\n"
                f"Received: from {helo} ([{peer}]) by {config.hostname} with ESMTPA; {received}\r\n")
        self.fh.write(head.encode("utf-8", "surrogateescape"))

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def abort(self) -> None:
        self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def commit(self) -> str:
        """fsync, rename to `<time>-<n>.eml`, trim the mailbox to the quota; returns the message id."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            now = time.time()
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}Z"
            msg_id = f"{stamp}-{next(_COUNTER):06d}"
            os.replace(self.tmp, self.box / f"{msg_id}.eml")
        except OSError:
            self.abort()
            raise
        names = sorted(p for p in os.listdir(self.box) if p.endswith(".eml"))
        for old in names[: max(0, len(names) - self.config.quota)]:
            with contextlib.suppress(FileNotFoundError):  # drop_mailbox may be faster
                os.unlink(self.box / old)
        return msg_id


class Session:
    """One SMTP conversation (RFC 5321 subset + RFC 4954 AUTH PLAIN/LOGIN)."""

    def __init__(self, server: Catcher, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.config = server, server.config
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self.helo = "unknown"
        self.user: str | None = None
        self.auth_failures = 0
        self.reset()

    def reset(self) -> None:
        self.mail_from: str | None = None
        self.rcpts: list[str] = []

    async def reply(self, line: str) -> None:
        self.writer.write(line.encode("utf-8", "replace") + b"\r\n")
        await self.writer.drain()

    async def readline(self) -> bytes | None:
        """The next line without CRLF, or None when the peer went away or idled out."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), self.config.idle_timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - Odoo 17's image has Python 3.10, where it is not TimeoutError
            await self.reply("421 4.4.2 idle timeout, closing")
            return None
        except (ValueError, asyncio.LimitOverrunError):
            await self.reply("500 5.5.2 line too long, closing")
            return None
        if not line.endswith(b"\n"):
            return None  # EOF (possibly mid-line)
        return line.rstrip(b"\r\n")

    async def run(self) -> None:
        await self.reply(f"220 {self.config.hostname} ESMTP OdooOps mail catcher (never relays)")
        while True:
            raw = await self.readline()
            if raw is None:
                return
            line = raw.decode("utf-8", "surrogateescape")
            verb, _, arg = line.partition(" ")
            handler = getattr(self, f"do_{verb.upper()}", None) if verb.isalpha() else None
            if handler is None:
                await self.reply("500 5.5.1 command not recognized")
                continue
            if await handler(arg.strip()) is False:
                return

    async def do_EHLO(self, arg: str) -> None:
        self.helo = re.sub(r"[^A-Za-z0-9.:\[\]-]", "", arg)[:255] or "unknown"
        self.reset()
        self.writer.write(
            f"250-{self.config.hostname}\r\n250-SIZE {self.config.max_size}\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n".encode())
        await self.writer.drain()

    async def do_HELO(self, arg: str) -> None:
        self.helo = re.sub(r"[^A-Za-z0-9.:\[\]-]", "", arg)[:255] or "unknown"
        self.reset()
        await self.reply(f"250 {self.config.hostname}")

    async def do_NOOP(self, arg: str) -> None:
        await self.reply("250 2.0.0 OK")

    async def do_RSET(self, arg: str) -> None:
        self.reset()
        await self.reply("250 2.0.0 OK")

    async def do_QUIT(self, arg: str) -> bool:
        await self.reply("221 2.0.0 bye")
        return False

    async def do_AUTH(self, arg: str) -> bool | None:
        if self.user is not None:
            await self.reply("503 5.5.1 already authenticated")
            return None
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if mech == "PLAIN":
            token = initial or await self.challenge("")
            if token is None:
                return False
            parts = self.decode(token).split("\0")
            user, password = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        elif mech == "LOGIN":
            user_b64 = initial or await self.challenge("VXNlcm5hbWU6")  # "Username:"
            if user_b64 is None:
                return False
            password_b64 = await self.challenge("UGFzc3dvcmQ6")  # "Password:"
            if password_b64 is None:
                return False
            user, password = self.decode(user_b64), self.decode(password_b64)
        else:
            await self.reply("504 5.5.4 unrecognized authentication type (use PLAIN or LOGIN)")
            return None
        if user == "\0cancel":
            await self.reply("501 5.7.0 authentication cancelled")
            return None
        if ENV_NAME.match(user) and self.server.credentials.check(user, password):
            self.user = user
            await self.reply("235 2.7.0 authentication successful")
            return None
        self.auth_failures += 1
        log(f"auth failed from {self.peer} as {user[:64]!r}")
        await self.reply("535 5.7.8 authentication credentials invalid")
        if self.auth_failures >= self.config.max_auth_failures:
            await self.reply("421 4.7.0 too many failed logins, closing")
            return False
        return None

    async def challenge(self, prompt: str) -> str | None:
        await self.reply(f"334 {prompt}")
        raw = await self.readline()
        if raw is None:
            return None
        text = raw.decode("ascii", "replace").strip()
        return "\0cancel" if text == "*" else text

    @staticmethod
    def decode(token: str) -> str:
        if token == "\0cancel":
            return token
        try:
            return base64.b64decode(token, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""

    async def do_MAIL(self, arg: str) -> None:
        if self.user is None:
            await self.reply("530 5.7.0 authentication required (AUTH PLAIN or LOGIN as the environment)")
            return
        if self.mail_from is not None:
            await self.reply("503 5.5.1 nested MAIL command")
            return
        match = re.match(r"(?i)FROM:\s*<([^>]*)>(.*)$", arg)
        if not match or not ADDRESS.match(match.group(1)):
            await self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        size = re.search(r"(?i)\bSIZE=(\d+)", match.group(2))
        if size and int(size.group(1)) > self.config.max_size:
            await self.reply(f"552 5.3.4 message size exceeds the limit of {self.config.max_size} bytes")
            return
        self.mail_from = match.group(1)
        await self.reply("250 2.1.0 OK")

    async def do_RCPT(self, arg: str) -> None:
        if self.mail_from is None:
            await self.reply("503 5.5.1 need MAIL before RCPT")
            return
        match = re.match(r"(?i)TO:\s*<([^>]+)>", arg)
        if not match or not ADDRESS.match(match.group(1)):
            await self.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return
        if len(self.rcpts) >= self.config.max_recipients:
            await self.reply(f"452 4.5.3 too many recipients (at most {self.config.max_recipients})")
            return
        self.rcpts.append(match.group(1))
        await self.reply("250 2.1.5 OK (captured, never delivered)")

    async def do_DATA(self, arg: str) -> bool | None:
        if self.mail_from is None or not self.rcpts:
            await self.reply("503 5.5.1 need MAIL and RCPT before DATA")
            return None
        assert self.user is not None
        try:
            draft: Draft | None = Draft(self.config, self.user, self.mail_from, self.rcpts, self.peer, self.helo)
        except OSError as exc:
            log(f"cannot store for {self.user}: {exc}")
            self.reset()
            await self.reply("451 4.3.0 could not store the message, try again later")
            return None
        await self.reply("354 end data with <CR><LF>.<CR><LF>")
        size = 0
        try:
            while True:
                line = await self.readline()
                if line is None:
                    return False  # the transaction is abandoned: nothing is stored
                if line == b".":
                    break
                if line.startswith(b"."):
                    line = line[1:]  # RFC 5321 4.5.2: the client doubled every leading dot
                size += len(line) + 2
                if draft is not None and size > self.config.max_size:
                    draft.abort()  # keep reading to the end of DATA, but hold nothing
                    draft = None
                elif draft is not None:
                    draft.write(line + b"\r\n")
            if draft is None:
                self.reset()
                await self.reply(f"552 5.3.4 message size exceeds the limit of {self.config.max_size} bytes")
                return None
            loop = asyncio.get_running_loop()
            done, draft = draft, None
            try:
                msg_id = await loop.run_in_executor(None, done.commit)  # fsync off the event loop
            except OSError as exc:
                log(f"store failed for {self.user}: {exc}")
                self.reset()
                await self.reply("451 4.3.0 could not store the message, try again later")
                return None
        finally:
            if draft is not None:
                draft.abort()
        log(f"stored {self.user}/{msg_id} size={size} rcpts={len(self.rcpts)}")
        self.reset()
        await self.reply(f"250 2.0.0 OK captured as {msg_id}")
        return None


class Catcher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.credentials = Credentials(config.credentials)
        self.sessions = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.sessions >= self.config.max_sessions:
                writer.write(b"421 4.3.2 too many connections, try again later\r\n")
                await writer.drain()
                return
            self.sessions += 1
            try:
                await Session(self, reader, writer).run()
            finally:
                self.sessions -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def serve(config: Config, host: str, port: int) -> None:
    catcher = Catcher(config)
    # Drafts of a previous run that died mid-message are never completed: remove them.
    for tmp in config.spool.glob("*/.tmp-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
    # 1 MiB per line: far above RFC 5321's 1000, so only abuse hits it.
    server = await asyncio.start_server(catcher.handle, host, port, limit=1024 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log(f"listening on {host}:{port}, spool {config.spool}, max size {config.max_size}, quota {config.quota}")
    async with server:
        await stop.wait()
    log("stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="0.0.0.0")
    p.add_argument("--port", type=int, default=1025)
    p.add_argument("--spool", type=Path, required=True)
    p.add_argument("--credentials", type=Path, required=True)
    p.add_argument("--max-size", type=int, default=Config.max_size)
    p.add_argument("--max-recipients", type=int, default=Config.max_recipients)
    p.add_argument("--quota", type=int, default=Config.quota)
    p.add_argument("--idle-timeout", type=float, default=Config.idle_timeout)
    p.add_argument("--max-sessions", type=int, default=Config.max_sessions)
    a = p.parse_args(argv)
    config = Config(spool=a.spool, credentials=a.credentials, max_size=a.max_size,
                    max_recipients=a.max_recipients, quota=a.quota, idle_timeout=a.idle_timeout,
                    max_sessions=a.max_sessions)
    asyncio.run(serve(config, a.listen, a.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
