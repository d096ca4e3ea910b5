"""The mail server row a copied database gets points at the catcher as its environment reaches it: the host's
address for a plain network, the catcher's name and own port on an internal network (untrusted code)."""

from __future__ import annotations

from pathlib import Path

from reconciler.data import mail
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore


def test_catcher_row_follows_the_environments_network(tmp_path: Path, services_env: dict[str, str]) -> None:
    host = HostSettings.from_env(tmp_path / "state", services_env)
    secrets = SecretStore(tmp_path / "secrets", key_file=tmp_path / "secret.key")
    plain = mail.catcher_login(host, secrets, "develop", {"network": "odooops-develop", "containers": []})
    assert (plain["host"], plain["port"]) == (host.mail_catcher_host, host.mail_catcher_port)
    internal = mail.catcher_login(host, secrets, "pr-7", {"network": "odooops-pr-7-internal", "internal_network": True,
                                                         "network_peers": ["odooops-mail-catcher"]})
    assert (internal["host"], internal["port"]) == ("odooops-mail-catcher", mail.CONTAINER_PORT)
    assert internal["user"] == "pr-7" and internal["password"] == mail.smtp_credentials(secrets, "pr-7")[1]
