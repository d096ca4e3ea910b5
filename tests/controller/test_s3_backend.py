"""Terraform state in S3: an environment applied with the s3 backend against a real S3 server (moto)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.controller.test_apply import apply


@pytest.fixture()
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_state_lives_in_s3(world: dict[str, Any], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="tf-state")
    backend = {"s3": {"bucket": "tf-state", "region": "us-east-1", "endpoints": {"s3": s3_endpoint},
                      "use_path_style": True, "skip_credentials_validation": True,
                      "skip_requesting_account_id": True, "skip_metadata_api_check": True,
                      "skip_region_validation": True}}
    world["host"] = dataclasses.replace(world["host"], tf_backend=backend)
    _, report, _ = apply(world)
    assert report.ok, [(e.env, e.error) for e in report.environments]
    env = report.environments[0].env
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tf-state").get("Contents", [])]
    assert f"odooops/{env}/terraform.tfstate" in keys
    assert not (world["state"] / "terraform" / env / "terraform.tfstate").exists()
