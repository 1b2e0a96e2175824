"""Loading the JWT filter with paste.deploy, ``propguard token``, and the refresher after a fork."""

from __future__ import annotations

import json
import os
import stat
import time

import jwt
import pytest
import webob
from jwt_unit_constants import AUD, ISS
from paste import deploy

from propguard import cli
from propguard.jwt.jwks import RemoteJWKS
from propguard.jwt.token_cli import thumbprint

APP_INI = """\
[pipeline:main]
pipeline = jwt echo

[filter:jwt]
use = egg:propguard#jwt
{options}

[app:echo]
paste.app_factory = test_jwt_tools:echo_factory
"""


def echo_factory(global_conf, **local_conf):
    def echo(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"roles": environ.get("HTTP_X_ROLES")}).encode()]

    return echo


def test_paste_deploy_pipeline_with_local_options(tmp_path, keys, token):
    options = "\n".join(
        [
            f"iss = {ISS}",
            f"audiences = {AUD}",
            "algorithms = RS256",
            f"public_key_files = RS256:{keys.rsa_pem}",
        ]
    )
    ini = tmp_path / "api-paste.ini"
    ini.write_text(APP_INI.format(options=options))
    app = deploy.loadapp(f"config:{ini}")
    response = webob.Request.blank(
        "/", headers={"X-Auth-Token": token(roles=["member"])}
    ).get_response(app)
    assert response.status_int == 200 and response.json == {"roles": "member"}
    assert webob.Request.blank("/").get_response(app).status_int == 401


def test_paste_deploy_options_from_an_oslo_config_file(tmp_path, keys, token):
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[propguard_jwt]\n"
        f"iss = {ISS}\n"
        f"audiences = {AUD}\n"
        "algorithms = ES256\n"
        f"public_key_files = ES256:{keys.ec_pem}\n"
        "delay_auth_decision = true\n"
    )
    ini = tmp_path / "api-paste.ini"
    ini.write_text(
        APP_INI.format(options=f"oslo_config_project = glance\noslo_config_file = {conf}")
    )
    app = deploy.loadapp(f"config:{ini}")
    good = webob.Request.blank("/", headers={"X-Auth-Token": token("ES256", roles=["reader"])})
    assert good.get_response(app).json == {"roles": "reader"}
    # delay_auth_decision came from the file: no token passes on, without roles.
    assert webob.Request.blank("/").get_response(app).json == {"roles": None}


def test_paste_deploy_refuses_a_bad_option(tmp_path, keys):
    ini = tmp_path / "api-paste.ini"
    ini.write_text(APP_INI.format(options=f"iss = {ISS}\naudiences = {AUD}\nalgorithms = none"))
    with pytest.raises(ValueError, match="algorithms"):
        deploy.loadapp(f"config:{ini}")


def test_propguard_token_rs256(tmp_path, capsys):
    key_dir = tmp_path / "keys"
    code = cli.main(
        [
            "token",
            "--alg", "RS256",
            "--key-dir", str(key_dir),
            "--roles", "member,reader",
            "--project-id", "p1",
            "--user-id", "alice",
            "--issuer", ISS,
            "--audience", AUD,
            "--expires-in", "600",
        ]
    )  # fmt: skip
    assert code == 0
    token = capsys.readouterr().out.strip()
    assert stat.S_IMODE(os.stat(key_dir / "RS256-private.pem").st_mode) == 0o600
    jwks = json.loads((key_dir / "jwks.json").read_text())
    (jwk,) = jwks["keys"]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"] == thumbprint(jwk)
    public = (key_dir / "RS256-public.pem").read_bytes()
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=AUD, issuer=ISS)
    assert claims["sub"] == "alice" and claims["roles"] == ["member", "reader"]
    assert claims["project_id"] == "p1" and claims["exp"] - claims["iat"] == 600
    # The same key pair is reused on the next call.
    assert cli.main(["token", "--alg", "RS256", "--key-dir", str(key_dir)]) == 0
    assert json.loads((key_dir / "jwks.json").read_text()) == jwks


def test_propguard_token_hs256_service_and_es256(tmp_path, capsys):
    secret = tmp_path / "secret"
    assert cli.main(["token", "--alg", "HS256", "--secret-file", str(secret), "--service"]) == 0
    token = capsys.readouterr().out.strip()
    assert len(secret.read_bytes().strip()) >= 32
    claims = jwt.decode(token, secret.read_bytes().strip(), algorithms=["HS256"], audience="glance")
    assert claims["sub"] == "nova" and claims["roles"] == ["service"]
    assert "kid" not in jwt.get_unverified_header(token)
    assert cli.main(["token", "--alg", "ES256", "--key-dir", str(tmp_path / "k")]) == 0
    assert jwt.get_unverified_header(capsys.readouterr().out.strip())["alg"] == "ES256"


def test_propguard_token_usage_errors(capsys):
    assert cli.main(["token", "--alg", "HS256"]) == 2
    assert "needs --secret-file" in capsys.readouterr().err
    assert cli.main(["token", "--alg", "RS256"]) == 2


def test_refresher_is_restarted_in_a_forked_worker():
    """glance-api/uWSGI load the pipeline before forking; the thread must come back in a child."""
    remote = RemoteJWKS(
        "http://127.0.0.1:9/jwks",
        ["RS256"],
        refresh_interval=3600,
        fetch=lambda: ({"keys": []}, None),
    )
    remote.start_thread()
    first = remote._thread
    remote._thread_pid = -1  # as seen from a forked child: the thread is the parent's
    remote.current()
    assert remote._thread is not first and remote._thread.is_alive()
    assert remote._thread_pid == os.getpid()
    remote.stop()
    started = time.monotonic()
    remote.current()  # stopped: no restart
    assert time.monotonic() - started < 1 and not remote._thread.is_alive()
