"""Mail catcher against the real Docker engine: the stand-in image runs the catcher, real SMTP clients send."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.data import mail
from reconciler.errors import OdooOpsError
from reconciler.executors.docker_runtime import L_ROLE, DockerRuntime
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from tests.data.conftest import env_name

MAX_SIZE = 64 * 1024  # small so the size limit is cheap to reach; the default is 25 MB
QUOTA = 5

# Run inside a container on a user network, like an environment's Odoo: plain smtplib, no TLS.
SENDER = r"""
import json, os, smtplib
from email.message import EmailMessage
spec = json.loads(os.environ["SPEC"])
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = spec["from"], ", ".join(spec["to_header"]), spec["subject"]
msg.set_content(spec["body"])
try:
    with smtplib.SMTP(spec["host"], spec["port"], timeout=30) as s:
        s.login(spec["user"], spec["password"])
        refused = s.send_message(msg, to_addrs=spec["rcpts"])
    print(json.dumps({"ok": True, "refused": refused}))
except smtplib.SMTPResponseException as exc:
    print(json.dumps({"ok": False, "code": exc.smtp_code}))
"""


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def catcher(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str], standin_image: str,
            docker_host: str) -> Iterator[dict[str, Any]]:
    """A catcher under a unique container name and port, with two registered environments."""
    tmp = tmp_path_factory.mktemp("mail")
    env = dict(services_env)
    address = env["ODOOOPS_PG_HOST_FROM_CONTAINERS"]  # the host as containers see it
    env["ODOOOPS_MAIL_CATCHER_PORT"] = str(_free_port(address))
    host = HostSettings.from_env(tmp / "state", env)
    assert host.mail_catcher_host == address
    secrets = SecretStore(tmp / "state" / "secrets", key_file=tmp / "secret.key")
    runtime = DockerRuntime(docker_host)
    name = f"odooops-mail-catcher-{uuid.uuid4().hex[:8]}"
    envs = [env_name("ma"), env_name("mb")]
    kwargs = {"name": name, "max_size": MAX_SIZE, "quota": QUOTA}
    try:
        hp = mail.ensure_catcher(host, runtime, secrets, standin_image, envs, **kwargs)
        yield {"host": host, "secrets": secrets, "runtime": runtime, "name": name, "envs": envs,
               "addr": hp, "image": standin_image, "kwargs": kwargs, "tmp": tmp}
    finally:
        mail.remove_catcher(runtime, name)
        runtime.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _send(c: dict[str, Any], user: str, password: str | None, body: str = "hello", subject: str = "s",
          rcpts: tuple[str, ...] = ("a@example.com",)) -> str:
    """Send one message from the host with smtplib; returns the server's final reply text."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "odoo@example.com", rcpts[0], subject
    msg.set_content(body)
    with smtplib.SMTP(*c["addr"], timeout=30) as s:
        if password is not None:
            s.login(user, password)
        s.send_message(msg, to_addrs=list(rcpts))
        code, text = s.noop()
        assert code == 250
    return text.decode()


def _stored(c: dict[str, Any], env: str) -> list[Path]:
    box = mail.spool_dir(c["host"]) / env
    return sorted(box.glob("*")) if box.exists() else []


def test_ensure_twice_keeps_one_running_container(catcher: dict[str, Any], docker_client: docker.DockerClient
                                                  ) -> None:
    before = docker_client.api.inspect_container(catcher["name"])
    again = mail.ensure_catcher(catcher["host"], catcher["runtime"], catcher["secrets"], catcher["image"],
                                catcher["envs"], **catcher["kwargs"])
    after = docker_client.api.inspect_container(catcher["name"])
    assert again == catcher["addr"]
    assert (after["Id"], after["State"]["StartedAt"]) == (before["Id"], before["State"]["StartedAt"])
    same = docker_client.containers.list(all=True, filters={"name": catcher["name"], "label": f"{L_ROLE}=mail-catcher"})
    assert [x.name for x in same] == [catcher["name"]]
    assert after["HostConfig"]["Init"] is True and after["HostConfig"]["Memory"] > 0
    assert after["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert after["Config"]["User"] != "0:0" and not after["Config"]["User"].startswith("0")
    assert mail.banner(*catcher["addr"]) is not None


def test_ensure_without_envs_admits_every_env_with_an_smtp_secret(catcher: dict[str, Any],
                                                                   docker_client: docker.DockerClient) -> None:
    env = env_name("mc")
    user, password = mail.smtp_credentials(catcher["secrets"], env)  # what apply renders into odoo.conf
    catcher["secrets"].set("production", mail.SECRET_NAME, "the-real-relay-password")
    before = docker_client.api.inspect_container(catcher["name"])["State"]["StartedAt"]
    mail.ensure_catcher(catcher["host"], catcher["runtime"], catcher["secrets"], catcher["image"],
                        **catcher["kwargs"])
    assert docker_client.api.inspect_container(catcher["name"])["State"]["StartedAt"] == before
    logins = json.loads((mail.conf_dir(catcher["host"]) / "credentials.json").read_text())
    assert env in logins and "production" not in logins and set(catcher["envs"]) <= set(logins)
    _send(catcher, user, password, subject="auto")
    assert [m["subject"] for m in mail.list_messages(catcher["host"], env)] == ["auto"]
    assert mail.drop_mailbox(catcher["host"], env) == 1


def test_container_on_user_network_sends_to_its_env_only(catcher: dict[str, Any],
                                                          docker_client: docker.DockerClient) -> None:
    env_a, env_b = catcher["envs"]
    user, password = mail.smtp_credentials(catcher["secrets"], env_a)
    assert user == env_a
    net = docker_client.networks.create(f"oo-mailtest-{uuid.uuid4().hex[:8]}", driver="bridge")
    try:
        spec = {"host": catcher["addr"][0], "port": catcher["addr"][1], "user": user, "password": password,
                "from": "Shop <shop@example.com>", "to_header": ["Customer <c@example.com>"],
                "rcpts": ["c@example.com", "hidden-bcc@example.com"], "subject": "Your order S00042",
                "body": "Dear customer,\nyour order ships today.\n"}
        sender = docker_client.containers.create(catcher["image"], entrypoint=["python3", "-c", SENDER],
                                                 environment={"SPEC": json.dumps(spec)}, network=net.name,
                                                 user="odoo")
        try:
            sender.start()
            assert sender.wait(timeout=120)["StatusCode"] == 0, sender.logs().decode()
            out = sender.logs(stdout=True, stderr=False)
        finally:
            sender.remove(v=True, force=True)  # v: the image's VOLUME lines made anonymous volumes
    finally:
        net.remove()
    assert json.loads(out.decode().strip().splitlines()[-1]) == {"ok": True, "refused": {}}
    listed = mail.list_messages(catcher["host"], env_a)
    ours = [m for m in listed if m["subject"] == "Your order S00042"]
    assert len(ours) == 1
    m = ours[0]
    assert m["from"] == "Shop <shop@example.com>"
    assert m["to"] == ["c@example.com", "hidden-bcc@example.com"]  # the envelope, Bcc included
    assert m["preview"] == "Dear customer, your order ships today."
    assert m["env"] == env_a and m["size"] > 0 and m["received_at"][:2] == "20"
    assert all(x["subject"] != "Your order S00042" for x in mail.list_messages(catcher["host"], env_b))
    full = mail.read_message(catcher["host"], env_a, m["id"])
    assert full["text"] == spec["body"]
    assert ["X-OdooOps-Environment", env_a] in full["headers"]


def test_wrong_password_is_refused_and_nothing_stored(catcher: dict[str, Any]) -> None:
    env_a, env_b = catcher["envs"]
    before = _stored(catcher, env_a)
    other_password = mail.smtp_credentials(catcher["secrets"], env_b)[1]
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        _send(catcher, env_a, other_password)  # b's password does not open a's mailbox
    assert err.value.smtp_code == 535
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        _send(catcher, "../x", "whatever")
    assert err.value.smtp_code == 535
    assert _stored(catcher, env_a) == before
    assert not (mail.spool_dir(catcher["host"]).parent / "x").exists()


def test_mail_without_auth_gets_530(catcher: dict[str, Any]) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as err:
        _send(catcher, "", None)
    assert err.value.smtp_code == 530


def test_oversized_message_gets_552_and_nothing_stored(catcher: dict[str, Any]) -> None:
    env_a = catcher["envs"][0]
    user, password = mail.smtp_credentials(catcher["secrets"], env_a)
    before = _stored(catcher, env_a)
    big = "x" * 100 + "\n"
    # smtplib announces SIZE=, which the catcher refuses at MAIL FROM ...
    with pytest.raises(smtplib.SMTPSenderRefused) as err:
        _send(catcher, user, password, body=big * (MAX_SIZE // 100))
    assert err.value.smtp_code == 552
    # ... and a client that does not announce it is cut off after DATA.
    with smtplib.SMTP(*catcher["addr"], timeout=30) as s:
        s.login(user, password)
        s.mail("odoo@example.com")
        s.rcpt("a@example.com")
        code, _ = s.data((big * (MAX_SIZE // 100)).encode())
        assert code == 552
        assert s.noop()[0] == 250  # the session survives for the next message
    assert _stored(catcher, env_a) == before


def test_dot_stuffed_lines_round_trip(catcher: dict[str, Any]) -> None:
    env_b = catcher["envs"][1]
    user, password = mail.smtp_credentials(catcher["secrets"], env_b)
    body = ".starts with a dot\n..two dots\n.\nlast line\n"
    _send(catcher, user, password, body=body, subject="dots")
    got = [m for m in mail.list_messages(catcher["host"], env_b) if m["subject"] == "dots"]
    assert len(got) == 1
    assert mail.read_message(catcher["host"], env_b, got[0]["id"])["text"] == body


def test_html_only_message_and_attachments_are_read(catcher: dict[str, Any]) -> None:
    env_b = catcher["envs"][1]
    user, password = mail.smtp_credentials(catcher["secrets"], env_b)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Odoo <odoo@example.com>", "x@example.com", "Facture INV/2026/0001 – é"
    msg.set_content("<html><style>p {color: red}</style><p>Bonjour&nbsp;<b>Zoé</b>,</p><p>ci-joint</p></html>",
                    subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="INV_2026_0001.pdf")
    with smtplib.SMTP(*catcher["addr"], timeout=30) as s:
        s.login(user, password)
        s.send_message(msg)
    got = [m for m in mail.list_messages(catcher["host"], env_b) if m["subject"].startswith("Facture")]
    assert len(got) == 1
    assert got[0]["subject"] == "Facture INV/2026/0001 – é"
    assert got[0]["preview"] == "Bonjour Zoé, ci-joint"  # tags and the style sheet gone, &nbsp; decoded
    full = mail.read_message(catcher["host"], env_b, got[0]["id"])
    assert full["text"] is None and "<b>Zoé</b>" in full["html"]
    assert full["attachments"] == [{"filename": "INV_2026_0001.pdf", "content_type": "application/pdf",
                                    "size": len(b"%PDF-1.4 fake")}]


def test_stopped_catcher_is_started_again_not_replaced(catcher: dict[str, Any],
                                                       docker_client: docker.DockerClient) -> None:
    before = docker_client.api.inspect_container(catcher["name"])["Id"]
    docker_client.api.stop(catcher["name"], timeout=10)
    assert mail.banner(*catcher["addr"]) is None
    mail.ensure_catcher(catcher["host"], catcher["runtime"], catcher["secrets"], catcher["image"],
                        **catcher["kwargs"])
    after = docker_client.api.inspect_container(catcher["name"])
    assert after["Id"] == before and after["State"]["Running"]
    assert mail.banner(*catcher["addr"]) is not None


def test_quota_keeps_the_newest(catcher: dict[str, Any]) -> None:
    env = env_name("mq")
    user, password = mail.register_env(catcher["host"], catcher["secrets"], env)  # no restart needed
    for i in range(QUOTA + 2):
        _send(catcher, user, password, subject=f"n{i}")
    subjects = [m["subject"] for m in mail.list_messages(catcher["host"], env)]
    assert subjects == [f"n{i}" for i in reversed(range(2, QUOTA + 2))]
    assert [m["subject"] for m in mail.list_messages(catcher["host"], env, limit=2)] == subjects[:2]
    assert mail.drop_mailbox(catcher["host"], env) == QUOTA
    assert mail.list_messages(catcher["host"], env) == []
    with pytest.raises(smtplib.SMTPAuthenticationError):
        _send(catcher, user, password)  # its login went with it


def test_empty_and_hostile_env_names(catcher: dict[str, Any]) -> None:
    assert mail.list_messages(catcher["host"], env_name("none")) == []
    for bad in ("../x", "..", "a/b", "", "A", "x" * 64):
        with pytest.raises(OdooOpsError) as err:
            mail.list_messages(catcher["host"], bad)
        assert err.value.code == "MAIL_ENV_INVALID"
    for bad_id in ("../../mail-catcher/credentials", "nope", ""):
        with pytest.raises(OdooOpsError) as err:
            mail.read_message(catcher["host"], catcher["envs"][0], bad_id)
        assert err.value.code == "MAIL_MESSAGE_NOT_FOUND"


def test_credentials_file_holds_hashes_only(catcher: dict[str, Any]) -> None:
    path = mail.conf_dir(catcher["host"]) / "credentials.json"
    text = path.read_text()
    for env in catcher["envs"]:
        assert mail.smtp_credentials(catcher["secrets"], env)[1] not in text
        assert env in json.loads(text)
    assert path.stat().st_mode & 0o077 == 0


def test_changed_config_replaces_and_busy_port_fails_clearly(catcher: dict[str, Any],
                                                             docker_client: docker.DockerClient) -> None:
    kwargs = dict(catcher["kwargs"], memory_bytes=96 * 1024 * 1024)
    before = docker_client.api.inspect_container(catcher["name"])
    old_volumes = [m["Name"] for m in before["Mounts"] if m["Type"] == "volume"]  # the image's VOLUME lines
    assert old_volumes
    mail.ensure_catcher(catcher["host"], catcher["runtime"], catcher["secrets"], catcher["image"], **kwargs)
    new = docker_client.api.inspect_container(catcher["name"])
    assert new["Id"] != before["Id"] and new["HostConfig"]["Memory"] == 96 * 1024 * 1024
    assert mail.banner(*catcher["addr"]) is not None
    for volume in old_volumes:  # replacing the container orphans nothing
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(volume)
    catcher["kwargs"] = kwargs
    # A second catcher on an address that is taken: refused with the fix, nothing left behind.
    host = catcher["host"]
    with socket.socket() as busy:
        busy.bind((host.mail_catcher_host, 0))
        busy.listen()
        taken = replace(host, mail_catcher_port=busy.getsockname()[1])
        other = f"odooops-mail-catcher-{uuid.uuid4().hex[:8]}"
        try:
            with pytest.raises(OdooOpsError) as err:
                mail.ensure_catcher(taken, catcher["runtime"], catcher["secrets"], catcher["image"], name=other)
        finally:
            mail.remove_catcher(catcher["runtime"], other)
    assert err.value.code == "MAIL_CATCHER_FAILED"
    assert "ODOOOPS_MAIL_CATCHER_PORT" in err.value.remediation
    assert not docker_client.containers.list(all=True, filters={"name": other})


# ---------------------------------------------------------------------------- protocol details
# The same server file run directly on the host (it is stdlib-only), with limits small enough to hit.

class Talk:
    """A raw SMTP conversation: send a line, get the whole (possibly multi-line) reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.banner = self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode()
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def __call__(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _greets_and_quits(port: int) -> bool:
    """True once the server greets; the QUIT + EOF means the probe's session has ended (the
    server counts sessions, and the limit test must not see this one)."""
    try:
        t = Talk(port)
    except OSError:
        return False
    try:
        return t.banner.startswith("220 ") and t("QUIT").startswith("221 ") and t.file.readline() == b""
    finally:
        t.close()


@contextlib.contextmanager
def _server(tmp: Path, *args: str) -> Iterator[dict[str, Any]]:
    """mailcatcher_server.py as a host process on a free loopback port; stopped on exit."""
    creds = tmp / "conf" / "credentials.json"
    creds.parent.mkdir(parents=True)
    creds.write_text(json.dumps({"dev-a": hashlib.sha256(b"pw-a").hexdigest()}))
    port = _free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, str(mail.SERVER_SOURCE), "--listen", "127.0.0.1", "--port", str(port),
                             "--spool", str(tmp / "spool"), "--credentials", str(creds), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _greets_and_quits(port):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the server did not answer within 30 s"
            time.sleep(0.05)  # polling for the listening socket, with a deadline
        yield {"port": port, "creds": creds, "spool": tmp / "spool"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with _server(tmp_path_factory.mktemp("mail-local"), "--max-recipients", "3") as server:
        yield server


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_protocol_auth_login_limits_and_errors(local_server: dict[str, Any]) -> None:
    t = Talk(local_server["port"])
    try:
        assert t.banner.startswith("220 ")
        ehlo = t("EHLO client.example")
        assert "AUTH PLAIN LOGIN" in ehlo and "SIZE " in ehlo
        assert t("BOGUS stuff").startswith("500 ")
        assert t("RCPT TO:<a@example.com>").startswith("503 ")
        assert t("AUTH CRAM-MD5").startswith("504 ")
        # AUTH LOGIN with both challenges, wrong then right
        assert t("AUTH LOGIN").startswith("334 ")
        assert t(_b64("dev-a")).startswith("334 ")
        assert t(_b64("wrong")).startswith("535 ")
        assert t("AUTH LOGIN " + _b64("dev-a")).startswith("334 ")
        assert t(_b64("pw-a")).startswith("235 ")
        assert t("MAIL FROM:<odoo@example.com> SIZE=10 BODY=8BITMIME").startswith("250 ")
        for i in range(3):
            assert t(f"RCPT TO:<r{i}@example.com>").startswith("250 ")
        assert t("RCPT TO:<r3@example.com>").startswith("452 ")  # max recipients (3 here)
        assert t("RSET").startswith("250 ")
        assert t("DATA").startswith("503 ")  # RSET forgot the transaction
        assert t("NOOP").startswith("250 ")
        assert t("QUIT").startswith("221 ")
    finally:
        t.close()
    assert not local_server["spool"].exists() or not any(local_server["spool"].rglob("*.eml"))


def test_protocol_auth_plain_challenge_and_credentials_reload(local_server: dict[str, Any]) -> None:
    creds: Path = local_server["creds"]
    t = Talk(local_server["port"])
    try:
        t("EHLO x")
        assert t("AUTH PLAIN").startswith("334")
        assert t(_b64("\0dev-b\0pw-b")).startswith("535 ")  # not registered yet
        # Replaced by rename, as the platform writes it: the running server picks it up.
        tmp = creds.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dev-b": hashlib.sha256(b"pw-b").hexdigest()}))
        tmp.replace(creds)
        assert t("AUTH PLAIN " + _b64("\0dev-b\0pw-b")).startswith("235 ")
    finally:
        t.close()
    t = Talk(local_server["port"])
    try:
        t("EHLO x")
        for _ in range(3):
            assert t("AUTH PLAIN " + _b64("\0dev-a\0pw-a")).startswith("535 ")  # dev-a was removed
        assert t.reply().startswith("421 ")  # three failures end the session
        assert t.file.readline() == b""
    finally:
        t.close()


def test_protocol_idle_timeout_and_session_limit(tmp_path: Path) -> None:
    with _server(tmp_path, "--idle-timeout", "1", "--max-sessions", "2") as server:
        first, second = Talk(server["port"]), Talk(server["port"])
        try:
            assert first.banner.startswith("220 ") and second.banner.startswith("220 ")
            third = Talk(server["port"])  # max 2 sessions here
            assert third.banner.startswith("421 ")
            third.close()
            # Waiting on the server: it closes an idle session itself (1 s here) with a 421.
            assert first.reply().startswith("421 ")
            assert first.file.readline() == b""
        finally:
            first.close()
            second.close()


def test_protocol_abandoned_data_leaves_nothing(local_server: dict[str, Any]) -> None:
    creds: Path = local_server["creds"]
    tmp = creds.with_suffix(".tmp")
    tmp.write_text(json.dumps({"dev-c": hashlib.sha256(b"pw-c").hexdigest()}))
    tmp.replace(creds)
    t = Talk(local_server["port"])
    try:
        t("EHLO x")
        assert t("AUTH PLAIN " + _b64("\0dev-c\0pw-c")).startswith("235 ")
        assert t("MAIL FROM:<>").startswith("250 ")  # the null sender (bounces) is allowed
        assert t("RCPT TO:<a@example.com>").startswith("250 ")
        assert t("DATA").startswith("354 ")
        t.sock.sendall(b"Subject: half\r\n\r\nthe client dies here\r\n")
    finally:
        t.close()
    box = local_server["spool"] / "dev-c"
    deadline = time.monotonic() + 30
    while any(box.iterdir()):  # the draft exists from the 354 on; the server removes it at EOF
        assert time.monotonic() < deadline, sorted(p.name for p in box.iterdir())
        time.sleep(0.05)
