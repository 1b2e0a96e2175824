"""Property-based invariants of propguard through a real Glance (hypothesis).

Why: the other functional tests pin cases someone thought of. Here hypothesis
generates sequences of requests by a non-admin member -- alone, relayed by a
service (``X-Service-Token`` with the ``service`` role), or with a service
token that auth_token does not confirm -- against an image an admin created
with properties the member cannot read: JSON-patch ``add``/``replace``/
``remove`` in both media types on names of every section, odd and unicode
names, odd JSON pointers (``/a~1b``, ``/``, ``//x``, ``/properties/x``, padded
names), odd image URLs, shows, and list filters. After every step:

1. no answer to the member (status line, headers, body) contains the name or
   the value of a property the member cannot read (hidden values are unique
   random strings, so a leak shows up as a substring);
2. a request changes a stored property only as the caller's rights on its
   name allow (read back by the admin, checked against Glance's database): the
   admin-only properties keep their values, and only ``wo_*`` (write, no read)
   can change without the member seeing it;
3. no answer is a 5xx;
4. each caller's view of the image equals the admin's view minus what that
   caller cannot read;

and, with the admin's view as the oracle: a refused PATCH changes nothing, an
accepted one changes exactly the properties it names (JSON patch applied in
order) and answers the caller's view, and a list filter finds the image only
when the caller can read the property and the value is the stored one.

The test's oracle of the rules (:data:`RIGHTS`) is written out by hand, not
taken from propguard's engine. Everything runs through keystonemiddleware
``auth_token`` + propguard + a real in-process Glance 33 (one for the whole
module, a fresh image per example). The fixed ``@example`` scenarios run
first every time; then each run explores with its own seed (``explore``:
printed, replayed with ``PROPGUARD_HYPOTHESIS_SEED``), half the PATCHes drawn
from what the caller's rights allow (:func:`allowed_operations`), and the
run fails unless its generated examples reached enough accepted PATCHes and
list matches (:class:`explore.Reach`).
"""

from __future__ import annotations

import json
import re
import string
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import webob
from explore import Explicit, Reach, exploring
from functional_rules import IMAGE_ATTRIBUTES
from glance_api import (
    IMAGE,
    JSON_PATCH,
    JSON_PATCH_DRAFT4,
    admin,
    member,
    propguard_filter,
    stored_properties,
)
from hypothesis import HealthCheck, event, example, given
from hypothesis import strategies as st
from oslo_config import cfg

from propguard.inprocess import InProcessGlance

pytestmark = pytest.mark.glance

#: One section per kind of protection; every pattern is anchored so that the
#: test's own oracle (:func:`section`) is a plain prefix test.
RULES = """\
# Hidden from every member, writable by the admin only.
[^hid_]
create = admin
read = admin
update = admin
delete = admin

# Only a member relayed by a service (service token) or the admin.
[^svc_]
create = admin,service:service
read = admin,service:service
update = admin,service:service
delete = admin,service:service

# Members may create but never read. (propguard: a PATCH add of a property
# the caller cannot read needs create and update, so members cannot add these.)
[^blind_]
create = admin,member
read = admin
update = admin
delete = admin

# Members may write but never read: blind writes (overwrite included).
[^wo_]
create = admin,member
read = admin
update = admin,member
delete = admin

# Members may read, not change.
[^ro_]
create = admin
read = admin,member
update = admin
delete = admin

# Set once, then frozen for everyone.
[^once_]
create = admin,member
read = admin,member
update = !
delete = !

# Everything else: the project's own.
[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""

#: The test's own reading of RULES (not propguard's engine): first matching
#: prefix decides; propguard's built-in ``^os_glance`` (everyone) comes first.
SECTIONS = ("os_glance", "hid_", "svc_", "blind_", "wo_", "ro_", "once_")
_ALL = frozenset({"create", "read", "update", "delete"})
_MEMBER_RIGHTS = {
    "os_glance": _ALL,
    "hid_": frozenset(),
    "svc_": frozenset(),
    "blind_": frozenset({"create"}),
    "wo_": frozenset({"create", "update"}),
    "ro_": frozenset({"read"}),
    "once_": frozenset({"create", "read"}),
    "*": _ALL,
}
#: The callers: a member (roles member, reader); the same member relayed by a
#: service (X-Service-Token with the "service" role); and the same member with a
#: service token that lacks it (auth_token marks it invalid: a plain member).
RIGHTS = {
    "member": _MEMBER_RIGHTS,
    "relayed": {**_MEMBER_RIGHTS, "svc_": _ALL},
    "unconfirmed": _MEMBER_RIGHTS,
}
CALLERS = tuple(RIGHTS)
#: Sections whose values the test makes secret (unique random strings).
SECRET_SECTIONS = frozenset({"hid_", "svc_", "blind_", "wo_"})

#: Keys of Glance's image document that are not extra properties.
CORE = IMAGE_ATTRIBUTES

HIDDEN_NAMES = ("hid_Zq81", "hid_Wm42")
#: Glance's image_property_quota here: 9 stored by the admin, room for 2 more.
PROPERTY_QUOTA = 11
#: What the admin stores on every image (values in SECRET_SECTIONS are made per image).
ADMIN_PROPERTIES = {
    "hid_Zq81": None,
    "hid_Wm42": None,
    "svc_Pt55": None,
    "blind_Rk37": None,
    "wo_Jd64": None,
    "ro_Ha90": "read-only",
    "once_Lu16": "frozen",
    "x_Fe23": "free",
    "x_Gb71": "",
}
SECRET_RE = re.compile(r"s[0-9a-f]{32}")
#: Query keys of GET /v2/images that are not filters on an extra property.
NOT_PROPERTY_FILTERS = CORE | {
    "limit",
    "marker",
    "member_status",
    "tag",
    "sort",
    "sort_key",
    "sort_dir",
    "changes-since",
    "properties",
    "members",
}


def section(name: str) -> str:
    for prefix in SECTIONS:
        if name.startswith(prefix):
            return prefix
    return "*"


def allowed(caller: str, name: str, op: str) -> bool:
    return op in RIGHTS[caller][section(name)]


def readable(caller: str, name: str) -> bool:
    return name in CORE or allowed(caller, name, "read")


def new_secret() -> str:
    return "s" + uuid.uuid4().hex


def properties(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in CORE}


def view(doc: dict[str, Any], caller: str) -> dict[str, Any]:
    """What ``caller`` must see of the admin's document."""
    return {k: v for k, v in doc.items() if readable(caller, k)}


def without_updated_at(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "updated_at"}


def strings_in(value: Any) -> Iterator[str]:
    """Every string of a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def decode_pointer(pointer: Any) -> list[str] | None:
    """Glance 33's ``_validate_json_pointer`` + ``_decode_json_pointer``; None if invalid."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return None
    if re.search(r"/\s*?/", pointer[1:]):
        return None
    if len(pointer) > 1 and pointer.endswith("/"):
        return None
    if pointer[1:].strip() == "/":
        return None
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        return None
    return [p.replace("~1", "/").replace("~0", "~").strip() for p in pointer.lstrip("/").split("/")]


def escape(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


# -- strategies ---------------------------------------------------------------


class _Secret:
    """Placeholder for a fresh unique value, made when the request is sent."""

    def __repr__(self) -> str:
        return "SECRET"


SECRET = _Secret()


class _Actual:
    """Placeholder for the property's stored value (as the admin sees it)."""

    def __repr__(self) -> str:
        return "ACTUAL"


ACTUAL = _Actual()

KNOWN_NAMES = tuple(ADMIN_PROPERTIES)
PREFIXES = ("hid_", "svc_", "blind_", "wo_", "ro_", "once_", "x_", "os_glance_", "HID_", "")
#: (not "owner": Glance 33 itself saves a member's owner change it then refuses
#: with 403, and stores "" as null while answering "" -- not propguard's business)
CORE_NAMES = ("name", "visibility", "min_ram", "protected", "tags", "id", "deleted")
ODD_POINTERS = (
    "/",
    "/ ",
    "//x_odd",
    "/properties/x_odd",
    "/properties/hid_Zq81",
    "/a~1b",
    "/hid~1Zq81",
    "/x_odd/",
    "x_odd",
    "",
    "/~",
    "/x~2",
    "/x_odd//y",
    "/ hid_Zq81",
    "/blind_Rk37\t",
    "/ wo_Jd64",
    "//hid_Zq81",
    "/hid_Zq81/x",
    "/hid_Zq81~0",
    "/svc_Pt55 ",
    "/locations/0",
    "/locations/-",
    "/tags/-",
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Like ``st.one_of`` with integer weights (one_of ignores repeated strategies)."""
    slots = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(slots).flatmap(lambda i: choices[i][1])


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Mostly ASCII or the BMP; sometimes anything (Glance refuses 4-byte UTF-8 with a 400)."""
    return weighted(
        (3, st.text(string.ascii_letters + string.digits + " _-./~:", max_size=max_size)),
        (2, st.text(st.characters(max_codepoint=0xFFFF), max_size=max_size)),
        (1, st.text(max_size=max_size)),
    )


names = weighted(
    (4, st.sampled_from(KNOWN_NAMES)),
    (2, st.builds(lambda p, s: p + s, st.sampled_from(PREFIXES), texts(5))),
    (1, st.sampled_from(CORE_NAMES)),
    (1, texts(8)),
)


@st.composite
def pointers(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 7)) == 3:  # rare (hypothesis favours 0 and the bounds)
        return draw(st.sampled_from(ODD_POINTERS))
    name = draw(names)
    style = draw(st.sampled_from(("escaped",) * 5 + ("raw", "padded", "double")))
    if style == "raw":
        return "/" + name
    if style == "padded":
        return "/ " + escape(name)[1:] + "\t"
    if style == "double":
        return "/" + escape(name)
    return escape(name)


non_strings = st.one_of(
    st.none(), st.booleans(), st.integers(), st.lists(st.text(max_size=2), max_size=2)
)
CORE_VALUES = {
    "name": texts(10),
    "visibility": st.sampled_from(("private", "shared", "community", "public", "bogus")),
    "min_ram": st.one_of(st.integers(-1, 64), st.text(max_size=2)),
    "protected": st.booleans(),
    "tags": st.lists(texts(4), max_size=2),
}


def values_for(root: str | None) -> st.SearchStrategy[Any]:
    if root in CORE_VALUES:
        return weighted((4, CORE_VALUES[root]), (1, non_strings))
    if root is not None and section(root) in SECRET_SECTIONS:
        # Only unique values in sections someone cannot read, so that any
        # occurrence elsewhere is a leak.
        return weighted((6, st.just(SECRET)), (1, non_strings))
    return weighted((6, texts(10)), (1, non_strings))


@st.composite
def operations(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(("add", "add", "replace", "remove")))
    pointer = draw(pointers())
    parts = decode_pointer(pointer)
    change: dict[str, Any] = {"op": op, "path": pointer}
    with_value = op != "remove"
    if draw(st.integers(0, 15)) == 7:
        with_value = not with_value  # a missing "value", or one too many
    if with_value:
        change["value"] = draw(values_for(parts[0] if parts else None))
    return change


#: How the member addresses the image: as clients do, and as Glance's routing also accepts.
IMAGE_PATHS = weighted(
    (12, st.just("/v2/images/{id}")),
    (1, st.just("//v2/images/{id}")),
    (1, st.just("/v2//images/{id}")),
    (1, st.just("/v2/images/{id}?x=1")),
    (1, st.just("/v2/images/{id}/")),  # Glance: 404
)


@dataclass(frozen=True)
class Patch:
    """A PATCH by ``caller``; ``ops`` in draft-10 shape, re-shaped when ``draft`` is 4."""

    caller: str
    draft: int
    ops: tuple[dict[str, Any], ...]
    path: str


@dataclass(frozen=True)
class Show:
    """A GET of the image by ``caller`` (``path``: one of IMAGE_PATHS)."""

    caller: str
    path: str


@dataclass(frozen=True)
class ListImages:
    """``GET /v2/images?<name>=<value>`` by ``caller`` (ACTUAL: the stored value)."""

    caller: str
    name: str
    value: Any


IMAGE_PATH = "/v2/images/{id}"
callers = st.sampled_from(CALLERS)
#: Filter names: also known names spelt with other case or white space (a
#: database that compares loosely must not make them an oracle).
list_names = weighted(
    (3, names),
    (1, st.sampled_from(KNOWN_NAMES).map(str.upper)),
    (
        1,
        st.builds(
            lambda p, n, q: p + n + q,
            st.sampled_from(("", " ", "\t")),
            st.sampled_from(KNOWN_NAMES),
            st.sampled_from(("", " ")),
        ),
    ),
)
patches = st.builds(
    Patch,
    callers,
    st.sampled_from((10, 10, 4)),
    weighted(
        (5, st.lists(operations(), min_size=1, max_size=1)),
        (2, st.lists(operations(), min_size=2, max_size=3)),
        (1, st.just([])),
    ).map(tuple),
    IMAGE_PATHS,
)


def _may(caller: str, name: str, op: str) -> bool:
    """Whether ``caller`` may apply ``op`` to ``name`` (propguard: an add or replace of a name the
    caller cannot read needs update; an add of a new one also create)."""
    if op == "remove":
        return allowed(caller, name, "delete")
    return allowed(caller, name, "update") and (op == "replace" or allowed(caller, name, "create"))


@st.composite
def allowed_operations(draw: st.DrawFn, caller: str) -> dict[str, Any]:
    """An operation ``caller``'s rights allow on the admin's image: add, replace or remove a
    name it may change, or add a new name in a section it may create in; a string value.

    The image changes during a sequence, so some are refused all the same (a removed name)."""
    op = draw(st.sampled_from(("add", "add", "replace", "remove")))
    known = [n for n in KNOWN_NAMES if _may(caller, n, op)]
    if op == "add" and (not known or draw(st.booleans())):
        prefixes = [p for p in ("x_", "wo_", "once_", "svc_") if _may(caller, p + "n", "add")]
        name = draw(st.sampled_from(prefixes)) + draw(
            st.text(string.ascii_letters + string.digits, min_size=1, max_size=5)
        )
    else:
        name = draw(st.sampled_from(known))
    change: dict[str, Any] = {"op": op, "path": escape(name)}
    if op != "remove":
        secret = section(name) in SECRET_SECTIONS
        change["value"] = (
            SECRET if secret else draw(st.text(string.ascii_letters + " _-.", max_size=10))
        )
    return change


#: PATCHes drawn from the caller's rights (without them about 22% of generated PATCHes
#: were accepted): the accepted path is where an oracle about what changed bites.
allowed_patches = st.sampled_from(CALLERS).flatmap(
    lambda caller: st.builds(
        Patch,
        st.just(caller),
        st.sampled_from((10, 10, 4)),
        st.lists(allowed_operations(caller), min_size=1, max_size=2).map(tuple),
        st.just(IMAGE_PATH),
    )
)


#: List filters a caller may match (a readable stored name, its value): where the
#: "found only when readable and equal" oracle can say "found" (one seed drew 3 in 31).
readable_lists = st.sampled_from(
    [(c, n) for c in CALLERS for n in KNOWN_NAMES if readable(c, n)]
).map(lambda pair: ListImages(pair[0], pair[1], ACTUAL))

steps = weighted(
    (3, patches),
    (3, allowed_patches),
    (1, st.builds(ListImages, callers, list_names, weighted((2, st.just(ACTUAL)), (1, texts(6))))),
    (1, st.builds(ListImages, callers, st.sampled_from(KNOWN_NAMES), st.just(ACTUAL))),
    (1, readable_lists),
    (1, st.builds(Show, callers, IMAGE_PATHS)),
)


# -- the real thing -----------------------------------------------------------


class Env:
    """One propguard-fronted Glance for the module, and its three callers' tokens."""

    def __init__(self, glance: InProcessGlance) -> None:
        self.glance = glance
        self.member = member(glance)
        self.service = glance.service_token(["service"])
        self.not_a_service = glance.service_token(["reader"])
        self.admin = admin(glance)

    def request(
        self,
        method: str,
        path: str,
        caller: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        check: bool = True,
    ) -> webob.Response:
        token = self.admin if caller == "admin" else self.member
        service = {"relayed": self.service, "unconfirmed": self.not_a_service}.get(caller)
        req = webob.Request.blank(
            path,
            base_url=self.glance.base_url,
            method=method,
            headers=self.glance.headers(token, service),
        )
        req.environ.update({"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"})
        if body is not None:
            req.body = body
        if content_type:
            req.content_type = content_type
        res = req.get_response(self.glance.app)
        # Invariant 3 (the admin's requests too: none should fail here).
        assert not check or res.status_int < 500, (caller, method, path, body, res.status, res.body)
        return res

    def stored(self, image_id: str) -> dict[str, str]:
        """The image's extra properties as in Glance's sqlite database."""
        return stored_properties(self.glance, image_id)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Module-wide: InProcessGlance allows one instance at a time, stopped before the next module."""
    workdir = tmp_path_factory.mktemp("invariants")
    rules = workdir / "rules.conf"
    rules.write_text(RULES)
    glance = InProcessGlance(
        workdir / "glance", extra_filters=[propguard_filter(rules, reload_interval="-1")]
    )
    glance.start()
    # Low enough that some sequences run into Glance's 413 (whose count
    # includes the properties the member cannot read).
    cfg.CONF.set_override("image_property_quota", PROPERTY_QUOTA)
    try:
        yield Env(glance)
    finally:
        cfg.CONF.clear_override("image_property_quota")
        glance.stop()


class World:
    """One example: an admin's image, the admin's view of it, and what each caller may not see."""

    def __init__(self, env: Env, reach: Reach | None = None) -> None:
        self.env = env
        self.reach = reach or Reach()
        self.original = {k: (new_secret() if v is None else v) for k, v in ADMIN_PROPERTIES.items()}
        res = env.request(
            "POST",
            "/v2/images",
            "admin",
            json.dumps({**IMAGE, "name": "inv", **self.original}).encode(),
            "application/json",
        )
        assert res.status_int == 201, res.body
        self.image_id = res.json["id"]
        self.url = f"/v2/images/{self.image_id}"
        #: Every name and value ever hidden from each caller on this image.
        self.hidden_names: dict[str, set[str]] = {c: set() for c in CALLERS}
        self.hidden_values: dict[str, set[str]] = {c: set() for c in CALLERS}
        self.doc = self.admin_view()
        assert properties(self.doc) == self.original

    def admin_view(self) -> dict[str, Any]:
        """The image as the admin reads it (checked against Glance's database)."""
        res = self.env.request("GET", self.url, "admin")
        assert res.status_int == 200, res.body
        doc = res.json
        assert properties(doc) == self.env.stored(self.image_id)
        for name, value in properties(doc).items():
            if section(name) in SECRET_SECTIONS:
                # Test design: only unique values ever go where someone cannot read.
                assert isinstance(value, str) and SECRET_RE.fullmatch(value), (name, value)
            for caller in CALLERS:
                if not readable(caller, name):
                    self.hidden_names[caller].add(name)
                    self.hidden_values[caller].add(value)
        return doc

    def cleanup(self) -> None:
        """Best effort (never masks the example's own failure): unprotect and delete."""
        try:
            body = json.dumps([{"op": "replace", "path": "/protected", "value": False}])
            self.env.request("PATCH", self.url, "admin", body.encode(), JSON_PATCH, check=False)
            self.env.request("DELETE", self.url, "admin", check=False)
        except Exception:  # noqa: BLE001 - the example's result matters, not the cleanup's
            pass

    # -- checks ---------------------------------------------------------

    def assert_no_leak(
        self,
        res: webob.Response,
        caller: str,
        sent: list[str],
        views: list[dict[str, Any]],
    ) -> None:
        """Invariant 1 for one answer to ``caller``.

        ``sent``: strings of the request; a hidden name the caller sent may be
        repeated (Glance's messages do), a hidden value only when it was in the
        query (the list's ``first`` link repeats the query). ``views``: what
        the caller may see; occurrences of a hidden name inside one of those
        strings (a visible ``x_hid_Zq81``, a name value "hid_Zq81") are not leaks.
        """
        text = f"{res.status}\n{res.headers}\n" + res.body.decode("utf-8", "replace")
        with suppress(ValueError):
            text += "\n" + "\n".join(strings_in(json.loads(res.body)))
        visible = {s for v in views for s in strings_in(v)} | set(sent)
        query = [s for s in sent if s.startswith("?")]
        tokens = [(n, sent) for n in self.hidden_names[caller]]
        tokens += [(v, query) for v in self.hidden_values[caller]]
        for token, excused in tokens:
            if not token or any(token in s for s in excused):
                continue
            masked = text
            for s in sorted((s for s in visible if token in s), key=len, reverse=True):
                masked = masked.replace(s, "\x00")
            assert token not in masked, (
                f"{caller} got hidden {token!r}: {res.status} {res.headers} {res.body!r}"
            )

    @staticmethod
    def check_rights(caller: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Invariant 2, from the rules' meaning: a caller's request changes a
        property only as the caller's rights on its name allow (so hidden
        properties nobody but the admin may write are never lost or changed)."""
        old, new = properties(before), properties(after)
        for name in old.keys() | new.keys():
            if name not in new:
                assert allowed(caller, name, "delete"), f"{caller} removed {name!r}"
            elif name not in old:
                assert allowed(caller, name, "create"), f"{caller} created {name!r}"
            elif old[name] != new[name]:
                assert allowed(caller, name, "update"), f"{caller} changed {name!r}"

    def check_hidden_kept(self) -> None:
        """Invariant 2, explicitly: the admin-only properties keep their values."""
        props = properties(self.doc)
        assert {n: props.get(n) for n in HIDDEN_NAMES} == {
            n: self.original[n] for n in HIDDEN_NAMES
        }

    def check_views(self) -> None:
        """Invariant 4: each caller sees the admin's document minus what it cannot read."""
        for caller in CALLERS:
            res = self.env.request("GET", self.url, caller)
            self.assert_no_leak(res, caller, [], [view(self.doc, caller)])
            assert res.status_int == 200, res.body
            assert res.json == view(self.doc, caller)

    # -- steps ------------------------------------------------------------

    def run(self, step: Patch | Show | ListImages) -> None:
        if isinstance(step, Patch):
            self.patch(step)
        elif isinstance(step, Show):
            self.show(step)
        else:
            self.list_images(step)
        self.check_hidden_kept()
        self.check_views()

    def show(self, step: Show) -> None:
        before = self.doc
        path = step.path.format(id=self.image_id)
        res = self.env.request("GET", path, step.caller)
        self.assert_no_leak(res, step.caller, [path], [view(before, step.caller)])
        if res.status_int == 200:
            assert res.json == view(before, step.caller)
        assert self.admin_view() == before

    def patch(self, step: Patch) -> None:
        before = self.doc
        ops = [{k: (new_secret() if v is SECRET else v) for k, v in op.items()} for op in step.ops]
        if step.draft == 4:
            body = [
                {op["op"]: op["path"], **({"value": op["value"]} if "value" in op else {})}
                for op in ops
            ]
        else:
            body = ops
        path = step.path.format(id=self.image_id)
        try:
            raw = json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: sent as a JSON escape
            raw = json.dumps(body).encode()
        media_type = JSON_PATCH if step.draft == 10 else JSON_PATCH_DRAFT4
        res = self.env.request("PATCH", path, step.caller, raw, media_type)
        after = self.doc = self.admin_view()
        event(f"PATCH by {step.caller}: {res.status_int}")
        if 200 <= res.status_int < 300:
            self.reach.hit("accepted PATCH")
        sent = [path, raw.decode()]
        sent += [p for op in ops for p in (decode_pointer(op["path"]) or [])]
        self.assert_no_leak(
            res, step.caller, sent, [view(before, step.caller), view(after, step.caller)]
        )
        self.check_rights(step.caller, before, after)
        if res.status_int == 413:
            # Glance's quota answer ("Attempted: N") would count the hidden ones.
            event("PATCH over the property quota")
            assert not re.search(r"\d", res.json["error"]["message"]), res.body
        if not 200 <= res.status_int < 300:
            # A refused PATCH changes nothing. (updated_at aside: Glance itself
            # bumps it on some refusals, e.g. a tag with 4-byte unicode, that
            # its database layer raises after writing the image row.)
            assert without_updated_at(after) == without_updated_at(before), (res.status, res.body)
            return
        # Accepted: exactly the JSON patch, applied in order, to the extra properties.
        expected = properties(before)
        for op in ops:
            root = decode_pointer(op["path"])[0]
            event(f"accepted {op['op']} on {'core' if root in CORE else section(root)}")
            if root in CORE:
                continue
            if op["op"] == "remove":
                del expected[root]
            else:
                expected[root] = op["value"]
        assert properties(after) == expected
        if res.status_int == 200:
            assert res.json == view(after, step.caller)

    def list_images(self, step: ListImages) -> None:
        before = self.doc
        stored = properties(before)
        value = stored.get(step.name, "no such") if step.value is ACTUAL else step.value
        query = "?" + urlencode([(step.name, value)], errors="surrogatepass")
        res = self.env.request("GET", "/v2/images" + query, step.caller)
        self.assert_no_leak(
            res, step.caller, [query, step.name, value], [view(before, step.caller)]
        )
        assert self.admin_view() == before
        try:
            (step.name + value).encode()
        except UnicodeEncodeError:  # a lone surrogate: the query is not UTF-8
            assert res.status_int == 400, res.body
            return
        if step.name in NOT_PROPERTY_FILTERS or step.name.endswith(("_min", "_max")):
            return  # a list parameter, a core filter or a range: no oracle
        assert res.status_int == 200, res.body
        found = [i for i in res.json["images"] if i["id"] == self.image_id]
        event(f"list filter on {section(step.name)}: {'found' if found else 'not found'}")
        self.reach.hit("list match" if found else "list without match")
        # Found only when readable and equal (a hidden value is no oracle).
        expect = readable(step.caller, step.name) and stored.get(step.name) == value
        assert bool(found) == expect, (step, res.json)
        for image in found:
            assert image == view(before, step.caller)


@exploring(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, min_size=3, max_size=8))
# Always tried first, whatever the generator does: the scenarios the invariants
# are about (Glance's D1 data loss, blind overwrite, relayed writes, the filter
# oracle, the quota answer, every way of naming a hidden property).
@example(
    sequence=Explicit(
        [
            Patch(
                "member", 10, ({"op": "replace", "path": "/name", "value": "renamed"},), IMAGE_PATH
            ),
            Patch("member", 4, ({"op": "add", "path": "/wo_Jd64", "value": SECRET},), IMAGE_PATH),
            Patch("member", 10, ({"op": "add", "path": "/wo_new", "value": SECRET},), IMAGE_PATH),
            Patch(
                "relayed",
                10,
                ({"op": "replace", "path": "/svc_Pt55", "value": SECRET},),
                IMAGE_PATH,
            ),
            Patch("relayed", 4, ({"op": "add", "path": "/svc_new", "value": SECRET},), IMAGE_PATH),
            ListImages("relayed", "svc_Pt55", ACTUAL),
            ListImages("member", "svc_Pt55", ACTUAL),
            ListImages("unconfirmed", "svc_new", ACTUAL),
            ListImages("member", "hid_Zq81", ACTUAL),
            ListImages("member", "ro_Ha90", ACTUAL),
            ListImages("member", "x_Fe23", "wrong"),
            Patch(
                "member", 10, ({"op": "add", "path": "/x_over", "value": "v"},), IMAGE_PATH
            ),  # 413
        ]
    )
).via("explicit")
@example(
    sequence=Explicit(
        [
            Patch("member", 10, ({"op": op, "path": path, "value": SECRET},), IMAGE_PATH)
            for op in ("add", "replace")
            for path in ("/hid_Zq81", "/ hid_Zq81\t", "//hid_Zq81", "/blind_Rk37", "/svc_Pt55")
        ]
        + [
            Patch("unconfirmed", 10, ({"op": "remove", "path": path},), IMAGE_PATH)
            for path in ("/hid_Wm42", "/svc_Pt55", "/wo_Jd64", "/ro_Ha90", "/once_Lu16")
        ]
        + [
            Patch("relayed", 10, ({"op": "remove", "path": "/svc_Pt55"},), IMAGE_PATH),
            Patch("member", 10, ({"op": "remove", "path": "/x_Fe23"},), IMAGE_PATH),
            Show("member", "//v2/images/{id}"),
        ]
    )
).via("explicit")
def _explore_member_requests(env: Env, reach: Reach, sequence: list[Any]) -> None:
    """Invariants 1-4 (see the module docstring) after every step of a random sequence."""
    reach.counting = not isinstance(sequence, Explicit)
    world = World(env, reach)
    try:
        world.check_views()
        for step in sequence:
            world.run(step)
    finally:
        world.cleanup()


#: Floors of what the generated (not the fixed) examples must reach in one run, well below
#: what a run reaches. Measured: 95 and 86 accepted PATCHes, but 33 with another seed;
#: list matches 13, then 3 in 31 lists (a red run) before readable_lists, 49 with it twice
#: as heavy. The floors sit well below the lowest seen: a floor a seed can miss is a flake.
REACH_FLOORS = {"accepted PATCH": 20, "list match": 5}


def test_member_requests_keep_the_invariants(env: Env) -> None:
    """The invariants hold on every example, and the generated ones reached the accepted path."""
    reach = Reach()
    _explore_member_requests(env, reach)
    reach.require(**REACH_FLOORS)
