"""``propguard demo``: real Keystone, real Glance, ``propguard serve`` in front, and the tour.

Order: check the ports and the broker, start Keystone (unless ``--jwt``),
Glance and the proxy, walk the tour through the proxy, stop everything.
Exit status: 0 when every step answered as the rules say, 1 when one did
not, 2 when something could not start (port in use, a service that failed:
the message names it and shows the end of its log), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, TextIO

from propguard import demo
from propguard.demo_live import tour as live
from propguard.demo_live.supervisor import HOST, ServiceError, Supervisor, free_port

DEFAULT_PORTS = {"keystone": 5000, "glance": 9393, "proxy": 9292, "glance_alone": 9394}
JWT_ISSUER = "https://propguard-demo.invalid/dev"
JWT_AUDIENCE = "glance"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propguard demo",
        description="Start, on 127.0.0.1, a real Keystone (sqlite, fernet), a real Glance 33 "
        "(uWSGI, sqlite, file store, its own property protections off) and `propguard serve` "
        "in front of it, then walk a tour with real tokens: what each caller sees, what is "
        "refused and why, a Nova-style snapshot recorded as a relation, and what the "
        "notification filter lets through to an indexer. Everything it started is stopped "
        "at the end or on Ctrl-C. `propguard demo --in-process` runs the older tour on an "
        "in-process Glance (no Keystone, no servers). Exit status: 0 all steps as expected, "
        "1 a step was not, 2 a service could not start, 130 interrupted.",
    )
    parser.add_argument(
        "--jwt",
        action="store_true",
        help="no Keystone: tokens minted by `propguard token` (RS256), the proxy's JWT filter "
        "validates them, Glance trusts the identity headers the proxy sets (trusted-auth)",
    )
    parser.add_argument(
        "--placement",
        choices=("auto", "sidecar", "paste"),
        default="auto",
        help="sidecar: propguard serve in front of Glance; paste: the filter inside "
        "glance-api's own pipeline (paste.ini.example), no proxy; auto (default): sidecar "
        "when this checkout has propguard serve, else paste (said at the start)",
    )
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="rules file, roles or policies format (default: policies/production.conf)",
    )
    parser.add_argument(
        "--ports",
        choices=("fixed", "auto"),
        default="fixed",
        help="fixed: Keystone 5000, Glance 9393, proxy 9292 (or the --*-port values); auto: "
        "free ports chosen by the kernel (default: fixed)",
    )
    for name, port in DEFAULT_PORTS.items():
        flag = name.replace("_", "-")
        parser.add_argument(f"--{flag}-port", type=int, default=port, metavar="PORT")
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="configuration, databases, images and logs (default: a temporary directory, "
        "removed at the end unless --keep)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--no-glance-comparison",
        dest="compare",
        action="store_false",
        help="skip the last chapter (a second Glance enforcing the same rules itself, "
        "without propguard; Keystone mode only)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="instead: the tour on an in-process Glance behind auth_token's test fixture "
        "(no Keystone, no servers, no ports; `propguard demo --in-process --help`)",
    )
    parser.add_argument(
        "--no-notifications",
        action="store_true",
        help="do not use RabbitMQ (127.0.0.1:5672, guest/guest); the indexer chapter is skipped",
    )
    return parser


class Progress:
    """Timestamps for each phase, and a line every few seconds while a service starts."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()
        self._last = 0.0

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:5.1f}s] {text}", file=self.out, flush=True)

    def waiting(self, name: str) -> Callable[[float], None]:
        self._last = 0.0

        def tick(elapsed: float) -> None:
            if elapsed - self._last >= 5:
                self._last = elapsed
                self.say(f"  ... {name} still starting ({elapsed:.0f} s)")

        return tick


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    demo._quiet_libraries()
    rules = os.path.abspath(args.rules) if args.rules else demo._default_rules()
    rules_info = demo.resolve_rules(rules)
    workdir = (
        os.path.abspath(args.workdir)
        if args.workdir
        else tempfile.mkdtemp(prefix="propguard-demo-")
    )
    os.makedirs(workdir, exist_ok=True)
    progress = Progress(out)
    try:
        with Supervisor(os.path.join(workdir, "logs"), out=out) as sup:
            os.makedirs(sup.logdir, exist_ok=True)
            code = _run(args, rules_info, workdir, sup, progress, out)
        progress.say("every service the demo started is stopped")
        if code != 0:  # keep what explains it
            print(f"propguard demo: logs and configuration: {workdir}", file=out, flush=True)
            args.keep = True
        return code
    except ServiceError as exc:
        print(f"\npropguard demo: {exc}", file=out, flush=True)
        print(f"propguard demo: logs and configuration: {workdir}", file=out, flush=True)
        args.keep = True
        return 2
    except KeyboardInterrupt:
        print("\npropguard demo: interrupted; every service it started is stopped", file=out)
        return 130
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def serve_available() -> bool:
    """True when this checkout has ``propguard serve`` (propguard.proxy.server)."""
    import importlib.util

    return importlib.util.find_spec("propguard.proxy.server") is not None


def _ports(args: argparse.Namespace) -> dict[str, int]:
    names = ["glance"] + ([] if args.jwt else ["keystone"])
    if args.placement == "sidecar":
        names.append("proxy")
    if args.compare and not args.jwt:
        names.append("glance_alone")
    if args.ports == "auto":
        return {name: free_port() for name in names}
    return {name: getattr(args, f"{name}_port") for name in names}


def _run(
    args: argparse.Namespace,
    rules_info: demo.DemoRules,
    workdir: str,
    sup: Supervisor,
    progress: Progress,
    out: TextIO,
) -> int:
    from propguard.demo_live import glance as glance_mod
    from propguard.demo_live import indexer, proxy
    from propguard.demo_live import keystone as keystone_mod
    from propguard.rules import RulesError
    from propguard.rules.loading import RulesOptions

    say = progress.say
    if args.placement == "auto":
        args.placement = "sidecar" if serve_available() else "paste"
        if args.placement == "paste":
            say(
                "NOTE: this checkout has no `propguard serve`: propguard runs inside "
                "glance-api's pipeline instead (--placement paste), not as a sidecar"
            )
    elif args.placement == "sidecar" and not serve_available():
        raise ServiceError("--placement sidecar: this checkout has no `propguard serve`")
    ports = _ports(args)
    mode = "JWT (no Keystone)" if args.jwt else "Keystone"
    say(f"propguard demo: {mode}, propguard as {args.placement}; work directory {workdir}")
    say("ports: " + ", ".join(f"{name} {HOST}:{port}" for name, port in ports.items()))
    sup.check_ports(ports)
    # The demo's Glance is sqlite, which compares property names exactly. Set, not
    # auto: `propguard serve` cannot read Glance's database and refuses auto.
    options = {**rules_info.filter_options(), "name_collation": "binary"}
    try:
        engine = RulesOptions.from_options(options).load()
    except RulesError as exc:
        raise ServiceError(f"the rules do not load: {exc}") from exc
    p = demo.plan(engine)
    shadow_file = _shadow_rules(workdir, rules_info, p)
    if shadow_file is not None:
        options["shadow_rules_file"] = shadow_file

    tap = None
    if args.no_notifications:
        say("notifications: off (--no-notifications)")
    else:
        problem = indexer.broker_problem()
        if problem is None:
            tap = indexer.Tap()
            say(f"notifications: RabbitMQ {indexer.BROKER_HOST}, exchange {tap.exchange}")
        else:
            say(
                f"notifications: RabbitMQ at {indexer.BROKER_HOST} (guest/guest) is not "
                f"reachable ({problem}); the indexer chapter will be SKIPPED. Start it "
                "(service rabbitmq-server start) or pass --no-notifications"
            )
    try:
        relations = {
            "relations_connection": os.path.join(workdir, "relations.sqlite"),
            "relations_outbox": os.path.join(workdir, "relations.outbox"),
        }
        filter_options = {**options, **relations}
        ks = None
        keys = os.path.join(workdir, "jwt")
        if args.jwt:  # the key pair the filter reads and `propguard token` signs with
            from propguard.jwt.token_cli import ensure_key_pair

            ensure_key_pair(keys, "RS256")
        else:
            ks = keystone_mod.start_keystone(
                sup,
                os.path.join(workdir, "keystone"),
                ports["keystone"],
                say,
                progress.waiting("keystone"),
            )
        glance = glance_mod.start_glance(
            sup,
            os.path.join(workdir, "glance"),
            ports["glance"],
            say,
            authtoken=ks.authtoken_options("glance") if ks else None,
            placement=args.placement,
            jwt=proxy.jwt_options(keys, JWT_ISSUER, JWT_AUDIENCE) if args.jwt else None,
            propguard_options=filter_options if args.placement == "paste" else options,
            notifications=tap.transport() if tap else None,
            progress=progress.waiting("glance"),
        )
        say(f"glance: ready at {glance.url}")
        if args.placement == "sidecar":
            endpoint = _start_proxy(
                sup,
                workdir,
                ports["proxy"],
                glance.url,
                ks,
                keys,
                filter_options,
                args.jwt,
                say,
                progress.waiting("propguard serve"),
            )
        else:
            endpoint = glance.url
            say("propguard: inside glance-api's pipeline (paste.ini.example), no proxy")
        cast = _keystone_cast(ks, endpoint) if ks else _jwt_cast(keys, endpoint, say)
        say("tour: every request below goes to " + endpoint)
        names = {} if ks is None else {i: n for n, i in {**ks.users, **ks.projects}.items()}
        tour, answers = _tour(
            endpoint, engine, p, cast, tap, rules_info, out, names, args.placement, args.jwt
        )
        log = "propguard-serve.log" if args.placement == "sidecar" else "glance.log"
        live.operating_chapter(
            tour,
            cast,
            os.path.join(workdir, "logs", log),
            shadow_file,
            metrics=args.placement == "sidecar",
        )
        if args.compare and ks is not None:
            _glance_alone(
                sup, workdir, ports["glance_alone"], ks, tour, cast, p, answers, rules_info, say
            )
        elif args.compare:
            tour.say("\n== Glance alone ==")
            tour.say(
                "   (skipped with --jwt: `propguard demo` runs this comparison with Keystone, "
                "`propguard demo --in-process` in-process)"
            )
        return _verdict(tour, answers)
    finally:
        if tap is not None:
            tap.close()


def _shadow_rules(workdir: str, rules_info: demo.DemoRules, p: demo.Plan) -> str | None:
    """Rules to try beside the tour's: the same, but members may read the hidden property.

    Written before the tour's rules so that its section decides that name first
    (roles format; a policies-format tour runs without shadow rules).
    """
    if p.hidden is None or rules_info.rule_format != "roles":
        return None
    import re

    with open(rules_info.rules, encoding="utf-8") as handle:
        text = handle.read()
    path = os.path.join(workdir, "next-rules.conf")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            "# propguard demo: the tour's rules, with members allowed to read "
            f"{p.hidden} (shadow_rules_file: decided beside them, never enforced)\n"
            f"[^{re.escape(p.hidden)}$]\ncreate = admin\nread = admin, member, reader\n"
            "update = admin\ndelete = admin\n\n" + text
        )
    return path


def _start_proxy(
    sup: Supervisor,
    workdir: str,
    port: int,
    upstream: str,
    ks: Any,
    keys: str,
    filter_options: dict[str, str],
    jwt: bool,
    say: Callable[[str], None],
    tick: Callable[[float], None],
) -> str:
    from propguard.demo_live import proxy

    conf, paste = proxy.write_config(
        workdir, ks, keys, filter_options, jwt, JWT_ISSUER, JWT_AUDIENCE
    )
    say(f"propguard serve: starting on {HOST}:{port}, upstream {upstream} ...")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "propguard"),
        "serve",
        "--upstream",
        upstream,
        "--bind",
        f"{HOST}:{port}",
        "--config-file",
        conf,
        "--workers",
        "1",
    ]
    if paste:
        argv += ["--paste-ini", paste]
    service = sup.start(
        "propguard-serve",
        argv,
        env=dict(os.environ),
        port=port,
        ready_path="/healthcheck",
        timeout=60,
        progress=tick,
    )
    say(
        f"propguard serve: ready at {service.url} ({'jwt' if jwt else 'authtoken'} propguard proxy)"
    )
    return service.url


# -- the cast -----------------------------------------------------------------


def _keystone_cast(ks: Any, endpoint: str) -> live.Cast:
    from keystoneauth1 import service_token, session
    from keystoneauth1.identity import v3

    def auth(user: str, project: str) -> Any:
        password = ks.passwords[user]
        return v3.Password(
            auth_url=ks.url,
            username=user,
            password=password,
            user_domain_id="default",
            project_name=project,
            project_domain_id="default",
        )

    def actor(name: str, user_auth: Any, service_auth: Any = None, service_user=None):
        s = session.Session(auth=user_auth)
        access = user_auth.get_access(s)
        service_roles: tuple[str, ...] = ()
        if service_auth is not None:
            service_roles = tuple(sorted(service_auth.get_access(s).role_names))
            s = session.Session(auth=service_token.ServiceTokenAuthWrapper(user_auth, service_auth))
        return live.LiveActor(
            name=name,
            session=s,
            user_id=access.username,
            project_id=access.project_name,
            roles=tuple(sorted(access.role_names)),
            service_user=service_user,
            service_roles=service_roles,
            service_counted="service" in service_roles,
        )

    alice = auth("alice", "demo")
    return live.Cast(
        admin=actor("admin", auth("admin", "demo")),
        alice=actor("alice (member)", alice),
        alice_via_nova=actor(
            "alice relayed by Nova (service token)", alice, auth("nova", "service"), "nova"
        ),
        mallory=actor(
            "alice with her own token as X-Service-Token", alice, auth("alice", "demo"), "alice"
        ),
        bob=actor("bob (member of another project)", auth("bob", "other")),
        nova=actor("nova (service user)", auth("nova", "service")),
        anonymous=live.LiveActor("anonymous", session.Session(), "-", "-", ()),
    )


def _mint(keys: str, user: str, project: str, roles: str, service: bool = False) -> str:
    """A token from the `propguard token` command itself (RS256, key pair in ``keys``)."""
    argv = [
        os.path.join(os.path.dirname(sys.executable), "propguard"),
        "token",
        "--alg",
        "RS256",
        "--key-dir",
        keys,
        "--issuer",
        JWT_ISSUER,
        "--audience",
        JWT_AUDIENCE,
        "--user-id",
        user,
        "--project-id",
        project,
        "--roles",
        roles,
        "--expires-in",
        "3600",
    ]
    if service:
        argv.append("--service")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise ServiceError(f"propguard token failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def _jwt_cast(keys: str, endpoint: str, say: Callable[[str], None]) -> live.Cast:
    from keystoneauth1 import service_token, session, token_endpoint

    say("tokens: propguard token --alg RS256 --key-dir ... (admin, alice, bob, nova)")
    tokens = {
        "admin": (
            _mint(keys, "admin", "demo", "admin,member,reader"),
            ("admin", "member", "reader"),
        ),
        "alice": (_mint(keys, "alice", "demo", "member,reader"), ("member", "reader")),
        "bob": (_mint(keys, "bob", "other", "member,reader"), ("member", "reader")),
        "nova": (_mint(keys, "nova", "service", "", service=True), ("service",)),
    }
    projects = {"admin": "demo", "alice": "demo", "bob": "other", "nova": "service"}

    def plugin(user: str) -> Any:
        return token_endpoint.Token(endpoint, tokens[user][0])

    def actor(name: str, user: str, service_user: str | None = None) -> live.LiveActor:
        auth = plugin(user)
        if service_user is not None:
            auth = service_token.ServiceTokenAuthWrapper(auth, plugin(service_user))
        service_roles = tokens[service_user][1] if service_user else ()
        return live.LiveActor(
            name=name,
            session=session.Session(auth=auth),
            user_id=user,
            project_id=projects[user],
            roles=tokens[user][1],
            service_user=service_user,
            service_roles=service_roles,
            service_counted="service" in service_roles,
            validator="the JWT filter",
        )

    return live.Cast(
        admin=actor("admin", "admin"),
        alice=actor("alice (member)", "alice"),
        alice_via_nova=actor("alice relayed by Nova (service token)", "alice", "nova"),
        mallory=actor("alice with her own token as X-Service-Token", "alice", "alice"),
        bob=actor("bob (member of another project)", "bob"),
        nova=actor("nova (service user)", "nova"),
        anonymous=live.LiveActor("anonymous", session.Session(), "-", "-", ()),
    )


# -- the tour -------------------------------------------------------------------


def _tour(
    endpoint: str,
    engine: Any,
    p: demo.Plan,
    cast: live.Cast,
    tap: Any,
    rules_info: demo.DemoRules,
    out: TextIO,
    names: dict[str, str],
    placement: str,
    jwt: bool,
) -> tuple[live.HttpTour, dict[str, Any]]:
    tour = live.HttpTour(endpoint, engine, out)
    tour.names = names
    if placement == "paste":
        tour.placement, tour.authenticator = "glance-api's pipeline", "auth_token in glance-api"
    elif jwt:
        tour.authenticator = "the JWT filter in propguard serve"
    tour.say("")
    tour.say(
        f"rules: {rules_info.rules} ({rules_info.rule_format} format; service_role_mode "
        "strict, service_token_roles service)"
    )
    tour.say(
        "names the rules make interesting: "
        + ", ".join(f"{k}={v}" for k, v in vars(p).items() if isinstance(v, str))
    )
    tour.say("")
    answers: dict[str, Any] = {}
    path = demo._publish(tour, cast, p, answers)  # type: ignore[arg-type]
    if path is not None:
        demo._member_edits(tour, cast, p, path, answers)  # type: ignore[arg-type]
    demo._service_token(tour, cast, p, path)  # type: ignore[arg-type]
    demo._write_once(tour, cast, p)  # type: ignore[arg-type]
    live.refused(tour, cast, path)
    live.nova_snapshot(tour, cast, p, answers)
    live.indexer_chapter(tour, tap, p, demo.SECRET, answers)
    return tour, answers


def _glance_alone(
    sup: Supervisor,
    workdir: str,
    port: int,
    ks: Any,
    tour: live.HttpTour,
    cast: live.Cast,
    p: demo.Plan,
    answers: dict[str, Any],
    rules_info: demo.DemoRules,
    say: Callable[[str], None],
) -> None:
    """The steps whose answer differs without propguard, on a Glance enforcing the rules itself."""
    from propguard.demo_live import glance as glance_mod

    tour.say("")
    native = {"rules": rules_info.rules, "format": rules_info.rule_format}
    if rules_info.policy_file:
        native["policy_file"] = rules_info.policy_file
    alone = glance_mod.start_glance(
        sup,
        os.path.join(workdir, "glance-alone"),
        port,
        say,
        authtoken=ks.authtoken_options("glance"),
        placement="sidecar",
        jwt=None,
        propguard_options={},
        notifications=None,
        native_protections=native,
        name="glance-alone",
    )
    tour.base_url = alone.url
    tour.say(
        f"every request below goes to {alone.url}: Glance alone (its own property "
        "protections, the same rules, no propguard)"
    )
    demo._glance_alone(tour, cast, p, answers)  # type: ignore[arg-type]


def _verdict(tour: live.HttpTour, answers: dict[str, Any]) -> int:
    tour.say("")
    skipped = answers.get("notifications") == "skipped"
    if tour.failures:
        tour.say(f"{tour.failures} of {tour.step} steps did not behave as expected")
        return 1
    tour.say(
        f"all {tour.step} steps behaved as expected"
        + (" (the indexer chapter was SKIPPED: no RabbitMQ)" if skipped else "")
    )
    return 0
