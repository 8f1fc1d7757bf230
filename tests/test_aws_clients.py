"""Which credentials the project's boto3 clients sign with (connectors.aws.local_credentials).

The embedded endpoint's "test" credentials stand in only for an endpoint on this machine when the
environment names none. Until 2026-12-07 any endpoint URL got them: with a VPC or FIPS endpoint
and real credentials from a file or a role, every call was signed "test" and refused by AWS (the
EventBridge sink dead-lettered every event, the dead-letter writer fell back for every line)."""
from __future__ import annotations

import boto3
import pytest

from connectors.archive import capture
from connectors.aws import make_client
from connectors.replay import eventbridge as replay_eventbridge
from connectors.replay import kinesis as replay_kinesis
from deploy.local.stack import client as stack_client

BUILDERS = {
    "connectors.aws.make_client": lambda url: make_client("kinesis", endpoint_url=url, region="us-east-1"),
    "replay kinesis_client": lambda url: replay_kinesis.kinesis_client(url, "us-east-1"),
    "replay events_client": lambda url: replay_eventbridge.events_client(url, "us-east-1"),
    "capture kinesis_client": lambda url: capture.kinesis_client(url, "us-east-1"),
    "deploy.local.stack client": lambda url: stack_client("kinesis", url, "us-east-1"),
}


@pytest.fixture
def credentials_file(tmp_path, monkeypatch):
    """Real-looking credentials in a credentials file only (as from `aws configure`), none in the environment."""
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = AKIAFROMTHEFILE00000\naws_secret_access_key = s3cr3t\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    # boto3.client() signs with boto3's default session, which keeps the credentials it resolved
    # first (the suite's "test" keys): a new one resolves them from this environment.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return path


def _access_key(client) -> str:
    return client._request_signer._credentials.get_frozen_credentials().access_key


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_only_an_endpoint_on_this_machine_gets_the_local_credentials(credentials_file, builder):
    make = BUILDERS[builder]
    for url in ("http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566"):
        assert _access_key(make(url)) == "test", url
    for url in ("https://vpce-0abc-kinesis.us-east-1.vpce.amazonaws.com", "https://kinesis-fips.us-east-1.amazonaws.com",
                None):
        assert _access_key(make(url)) == "AKIAFROMTHEFILE00000", url
