"""A configuration mistake stops the JWT filter at load, with a message naming the option."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jwt_unit_constants import AUD, ISS
from oslo_config import cfg

from propguard.jwt import config, opts
from propguard.jwt.config import ConfigError


def load(options, conf=None):
    return config.load(options, conf or cfg.ConfigOpts(), start=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iss": ""}, "iss: required"),
        ({"audiences": ""}, "audiences: required"),
        ({"algorithms": ""}, "algorithms: required"),
        ({"algorithms": "none"}, "algorithms = 'none'"),
        ({"algorithms": "RS256,none"}, "algorithms = 'RS256,none'"),
        ({"algorithms": "RS256,HS256"}, "cannot be mixed"),
        ({"public_key_files": "/etc/x.pem"}, "must be ALG:PATH"),
        ({"public_key_files": "ES256:{rsa_pem}"}, "ES256 is not in algorithms"),
        ({"algorithms": "ES256", "public_key_files": "ES256:{rsa_pem}"}, "needs an EC public key"),
        ({"public_key_files": "RS256:/nonexistent.pem"}, "cannot read"),
        ({"public_key_files": "", "jwks_url": "http://idp.example/jwks"}, "jwks_url: 'http"),
        ({"public_key_files": "", "jwks_url": "file:///etc/jwks"}, "must be an https URL"),
        ({"leeway": "5s"}, "leeway = '5s'"),
        ({"roles_claims": "realm_access..roles"}, "empty segment"),
        ({"token_use": "admin"}, "token_use = 'admin'"),
        ({"public_key_files": ""}, "the issuer has no key"),
        ({"nonsense": "1"}, "unknown propguard jwt option(s) in paste config: nonsense"),
        ({"service_token_roles": ""}, "service_token_roles: must name at least one role"),
    ],
)
def test_bad_option_names_the_option(keys, change, message):
    options = {
        "iss": ISS,
        "audiences": AUD,
        "algorithms": "RS256",
        "public_key_files": f"RS256:{keys.rsa_pem}",
    }
    options.update({k: v.format(rsa_pem=keys.rsa_pem) for k, v in change.items()})
    with pytest.raises(ConfigError) as caught:
        load(options)
    assert message in str(caught.value)


def test_hmac_secret_checks(keys, tmp_path):
    base = {"iss": ISS, "audiences": AUD, "algorithms": "HS256"}
    short = tmp_path / "short"
    short.write_bytes(b"x" * 31 + b"\n")
    with pytest.raises(ConfigError, match="at least 32 bytes, it has 31"):
        load({**base, "hmac_secret_file": f"HS256:{short}"})
    pem = tmp_path / "pem"
    shutil.copy(keys.rsa_pem, pem)
    with pytest.raises(ConfigError, match="looks like a public key"):
        load({**base, "hmac_secret_file": f"HS256:{pem}"})
    with pytest.raises(ConfigError, match="HS384 is not in algorithms"):
        load({**base, "hmac_secret_file": f"HS384:{keys.secret_file}"})
    assert load({**base, "hmac_secret_file": f"HS256:{keys.secret_file}"}).issuers[ISS]


def test_jwks_file_binding(keys, tmp_path):
    base = {"iss": ISS, "audiences": AUD}
    loaded = load({**base, "algorithms": "RS256,ES256", "jwks_file": str(keys.jwks)})
    index = loaded.issuers[ISS].static_keys
    assert {k.alg for k in index.all("RS256")} == {"RS256"} and len(index.all("ES256")) == 1
    # Keys of algorithms the issuer does not accept are left out, not bound to another one.
    only_es = load({**base, "algorithms": "ES256", "jwks_file": str(keys.jwks)})
    assert not only_es.issuers[ISS].static_keys.all("RS256")
    # An RSA key without alg takes the issuer's one RSA algorithm, and none if it has two.
    document = json.loads(keys.jwks.read_text())
    rsa_key = next(k for k in document["keys"] if k["kty"] == "RSA")
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"keys": [{k: v for k, v in rsa_key.items() if k != "alg"}]}))
    assert (
        load({**base, "algorithms": "PS256", "jwks_file": str(bare)})
        .issuers[ISS]
        .static_keys.all("PS256")
    )
    with pytest.raises(ConfigError, match="no signature key usable"):
        load({**base, "algorithms": "RS256,PS256", "jwks_file": str(bare)})
    # oct keys in a JWKS are never HMAC secrets.
    octet = tmp_path / "oct.json"
    octet.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}))
    with pytest.raises(ConfigError, match="hmac_secret_file only"):
        load({**base, "algorithms": "HS256", "jwks_file": str(octet)})
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="jwks_file: .* not a JWKS document"):
        load({**base, "algorithms": "RS256", "jwks_file": str(bad)})


def test_issuers_prefixed_options_and_unknown_ones(keys):
    options = {
        "issuers": "a",
        "a.iss": ISS,
        "a.audiences": AUD,
        "a.algorithms": "RS256",
        "a.public_key_files": f"RS256:{keys.rsa_pem}",
    }
    assert list(load(options).issuers) == [ISS]
    with pytest.raises(ConfigError, match="b.iss"):
        load({**options, "b.iss": ISS})
    with pytest.raises(ConfigError, match="iss"):
        load({**options, "iss": ISS})  # unprefixed issuer options are not read with issuers set
    with pytest.raises(ConfigError, match="is also issuer 'a'"):
        load(
            {
                **options,
                "issuers": "a,b",
                **{k.replace("a.", "b.", 1): v for k, v in options.items() if k.startswith("a.")},
            }
        )


def test_options_from_oslo_config(keys, tmp_path):
    """[propguard_jwt] and [propguard_jwt:<name>] in the service's config file, paste first."""
    conf_file = tmp_path / "glance-api.conf"
    conf_file.write_text(
        "[propguard_jwt]\n"
        "issuers = kc\n"
        "delay_auth_decision = true\n"
        "[propguard_jwt:kc]\n"
        f"iss = {ISS}\n"
        f"audiences = {AUD}\n"
        "algorithms = RS256\n"
        f"public_key_files = RS256:{keys.rsa_pem}\n"
        "leeway = 10\n"
    )
    conf = cfg.ConfigOpts()
    conf([], project="glance", default_config_files=[str(conf_file)])
    loaded = load({"kc.leeway": "20"}, conf)
    assert loaded.delay_auth_decision is True
    assert loaded.issuers[ISS].leeway == 20  # paste wins
    conf_file.write_text(conf_file.read_text().replace("leeway = 10", "leeway = ten"))
    conf = cfg.ConfigOpts()
    conf([], project="glance", default_config_files=[str(conf_file)])
    with pytest.raises(ConfigError, match=r"\[propguard_jwt:kc\] leeway"):
        load({}, conf)


@pytest.mark.parametrize(
    ("issuers", "section", "listed"),
    [("kc", "kc2", "kc"), ("", "kc", "none: issuers is not set")],
)
def test_an_issuer_section_not_listed_in_issuers_is_refused(keys, tmp_path, issuers, section, listed):
    """``[propguard_jwt:kc2]`` beside ``issuers = kc`` would be read by nothing: refused at start."""
    issuer_options = (
        f"iss = {ISS}\naudiences = {AUD}\nalgorithms = RS256\n"
        f"public_key_files = RS256:{keys.rsa_pem}\n"
    )
    listed_section = f"[propguard_jwt:{issuers}]\n{issuer_options}" if issuers else ""
    top = f"issuers = {issuers}\n" if issuers else issuer_options
    conf_file = tmp_path / "glance-api.conf"
    conf_file.write_text(
        f"[propguard_jwt]\n{top}{listed_section}[propguard_jwt:{section}]\nleeway = 5\n"
    )
    conf = cfg.ConfigOpts()
    conf([], project="glance", default_config_files=[str(conf_file)])
    with pytest.raises(ConfigError) as raised:
        load({}, conf)
    message = str(raised.value)
    assert f"[propguard_jwt:{section}] of {conf_file}" in message
    assert f"issuers ({listed})" in message
    conf_file.write_text(f"[propguard_jwt]\n{top}{listed_section}")
    conf = cfg.ConfigOpts()
    conf([], project="glance", default_config_files=[str(conf_file)])
    assert list(load({}, conf).issuers) == [ISS]


def test_list_opts_covers_every_option():
    [(group, options)] = opts.list_opts()
    assert group == "propguard_jwt"
    assert {o.dest for o in options} == {o.dest for o in opts.FILTER_OPTS + opts.ISSUER_OPTS}
    assert all(o.help for o in options)


def test_oslo_config_generator_namespace():
    generator = shutil.which("oslo-config-generator", path=str(Path(sys.executable).parent))
    assert generator
    out = subprocess.run(
        [generator, "--namespace", "propguard.jwt"], capture_output=True, text=True, check=True
    ).stdout
    assert "[propguard_jwt]" in out and "#jwks_max_stale = 86400" in out


def test_paste_entry_point():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="paste.filter_factory") if e.name == "jwt"]
    assert entry.value == "propguard.jwt.filter:filter_factory"
    from propguard.jwt.filter import filter_factory

    assert entry.load() is filter_factory
