"""``propguard serve`` in front of a real Glance 33 under uWSGI: what is checked is what is forwarded.

Glance here is the demo's (sqlite, file store, uWSGI as Glance recommends,
``versionnegotiation`` and ``http_proxy_to_wsgi`` in its pipeline with
``enable_proxy_headers_parsing = true``), trusting the identity headers the
proxy passes (reachable only through it); the proxy is ``propguard serve``
(gunicorn) with ``canonical request_id propguard proxy`` and the caller's
identity headers trusted. Requests are written on raw sockets, so every
spelling reaches the proxy byte for byte.

Every spelling of an image, task, member, import or stage target that
RFC 3986 and Glance's ``versionnegotiation`` resolve to a route is either
checked as that route (hidden values never shown, protected values never
changed) or refused with a 4xx; the header rules hold against a real
Glance (a ``Connection`` naming identity headers, hostile ``Host`` values,
the version document's links).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from proxy_processes import ServeProcess, free_port, trusted_identity_ini

from propguard.demo_live.glance import start_glance
from propguard.demo_live.supervisor import Supervisor

pytestmark = pytest.mark.glance

RULES = """\
[^x_secret$]
create = admin
read = admin
update = admin
delete = admin

[^x_protected$]
create = admin
read = @
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
SECRET = "S3CRET-VALUE"
VND = "application/vnd.openstack.images-"
PROJECT, OTHER = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"


def identity(roles: str, project: str = PROJECT) -> dict[str, str]:
    return {
        "X-Identity-Status": "Confirmed",
        "X-Roles": roles,
        "X-Project-Id": project,
        "X-User-Id": f"user-{roles.split(',')[0]}-{project[:4]}",
    }


#: Keystone's implied roles spelled out (Glance 33's defaults ask for ``reader``).
ADMIN = identity("admin,member,reader")
MEMBER, OUTSIDER = identity("member,reader"), identity("member,reader", OTHER)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def send(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes | None = None
) -> Answer:
    """One request on a raw socket: the target and headers exactly as given."""
    lines = [f"{method} {target} HTTP/1.1"]
    if not any(k.lower() == "host" for k in headers):
        lines.append(f"Host: 127.0.0.1:{port}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body or b'')}", "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + (body or b""))
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        length = int(parsed.get("content-length", -1))
        chunked = "chunked" in parsed.get("transfer-encoding", "")
        while (
            (length >= 0 and len(payload) < length)
            or (chunked and not payload.endswith(b"0\r\n\r\n"))
            or (length < 0 and not chunked)
        ) and (chunk := sock.recv(65536)):
            payload += chunk
    if chunked:
        payload = _unchunk(payload)
    return Answer(int(status_line.split()[1]), parsed, payload)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


@dataclass
class Stack:
    glance: int
    proxy: int

    def proxied(self, method: str, target: str, headers: dict, body: object = None) -> Answer:
        return send(self.proxy, method, target, headers, _body(body))

    def direct(self, method: str, target: str, headers: dict, body: object = None) -> Answer:
        return send(self.glance, method, target, headers, _body(body))

    def create(self, **properties: str) -> str:
        document = {"name": "img", "disk_format": "raw", "container_format": "bare"}
        answer = self.proxied(
            "POST", "/v2/images", {**ADMIN, "Content-Type": "application/json"},
            {**document, **properties},
        )  # fmt: skip
        assert answer.status == 201, answer
        return answer.json()["id"]

    def stored(self, image_id: str) -> dict:
        """The image as Glance stores it, read by the admin past the proxy."""
        answer = self.direct("GET", f"/v2/images/{image_id}", ADMIN)
        assert answer.status == 200, answer
        return answer.json()


def _body(body: object) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("canonical")
    etc = work / "glance" / "etc"
    etc.mkdir(parents=True)
    policies = work / "policy.d"
    policies.mkdir()
    (policies / "tasks.yaml").write_text('"tasks_api_access": "role:admin or role:member"\n')
    # Read by glance.wsgi before glance-api.conf (OS_GLANCE_CONFIG_DIR): the
    # options the demo's Glance does not set.
    (etc / "glance-image-import.conf").write_text(
        "[oslo_middleware]\nenable_proxy_headers_parsing = true\n"
        f"[oslo_policy]\npolicy_dirs = {policies}\n"
    )
    rules = work / "rules.conf"
    rules.write_text(RULES)
    glance_port = free_port()
    with open(os.devnull, "w") as quiet, Supervisor(str(work), out=quiet) as sup:
        start_glance(
            sup, str(work / "glance"), glance_port, lambda _msg: None,
            authtoken=None, placement="sidecar", jwt={}, propguard_options={},
            notifications=None,
        )  # fmt: skip
        ini = trusted_identity_ini(work / "serve.ini", rules)
        proxy = ServeProcess(f"http://127.0.0.1:{glance_port}", ini, log=work / "serve.log")
        try:
            yield Stack(glance_port, proxy.port)
        finally:
            proxy.stop()


@pytest.fixture
def stack(_stack: Stack, allow_loopback_port) -> Stack:
    allow_loopback_port(_stack.glance)
    allow_loopback_port(_stack.proxy)
    return _stack


def spellings(image_id: str, tail: str = "") -> list[tuple[str, dict[str, str]]]:
    """Targets (and Accept headers) that uWSGI + Glance route to ``/v2/images/{id}{tail}``."""
    path = f"/images/{image_id}{tail}"
    return [
        (f"/v2{path}", {}),
        (path, {"Accept": f"{VND}v2"}),
        (path, {"Accept": f"{VND}v2.1"}),
        (path, {"Accept": f"{VND}v2.9"}),
        (f"/v2/.{path}", {}),
        (f"/v2/x/..{path}", {}),
        (f"/v2/%2e{path}", {}),
        (f"/v2/%2E/x/%2e%2E{path}", {}),
        (f"/./v2{path}", {}),
        (f"/v2/./.{path}", {}),
        (f"/v2/images/./{image_id}{tail}", {}),
        (f"//v2//images//{image_id}{tail}", {}),
        (f"/v2.1{path}", {}),
        (f"/v2.0{path}", {}),
        (f"/%76%32{path}", {}),  # unreserved characters percent-encoded
        (f"/v2/%69mages/{image_id}{tail}", {}),
        (f"http://attacker.example/v2{path}", {}),  # absolute form
        (f"/x/../images/x/../..{path}", {"Accept": f"{VND}v2"}),
    ]


#: Targets that must be refused (4xx) before anything reaches Glance.
def refused_spellings(image_id: str) -> list[str]:
    return [
        f"/v2/images/{image_id}%2F",
        f"/v2/images%2F{image_id}",
        f"/v2/images/{image_id}/",
        f"/v2/images/{image_id}/.",
        f"/../v2/images/{image_id}",
        f"/v2/../../v2/images/{image_id}",
        f"/v2/images/{image_id}%00",
        f"/v2/images/{image_id}/unknown",
        f"/v2/%ff/../images/{image_id}",
    ]


def assert_hidden(answer: Answer) -> None:
    assert SECRET.encode() not in answer.body, answer
    assert b"x_secret" not in answer.body, answer


def test_every_spelling_of_an_image_read_is_filtered(stack: Stack) -> None:
    image_id = stack.create(x_secret=SECRET, x_protected="orig")
    for target, extra in spellings(image_id):
        answer = stack.proxied("GET", target, {**MEMBER, **extra})
        assert answer.status == 200, (target, extra, answer)
        assert answer.json()["id"] == image_id
        assert answer.json()["x_protected"] == "orig"
        assert_hidden(answer)
    for target in refused_spellings(image_id):
        answer = stack.proxied("GET", target, MEMBER)
        assert answer.status in (400, 404), (target, answer)
        assert answer.json()["error"]["code"] == answer.status
        assert_hidden(answer)


def test_no_spelling_of_a_patch_changes_anything_protected(stack: Stack) -> None:
    image_id = stack.create(x_secret=SECRET, x_protected="orig")
    media = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    for target, extra in spellings(image_id):
        for op, status in (
            ({"op": "replace", "path": "/x_protected", "value": "changed"}, 403),
            ({"op": "replace", "path": "/x_secret", "value": "changed"}, 409),
            ({"op": "remove", "path": "/x_secret"}, 409),
        ):
            answer = stack.proxied("PATCH", target, {**MEMBER, **extra, **media}, [op])
            assert answer.status == status, (target, extra, op, answer)
            assert SECRET.encode() not in answer.body, answer
        answer = stack.proxied(
            "PATCH", target, {**MEMBER, **extra, **media},
            [{"op": "add", "path": "/x_free", "value": target[-40:]}],
        )  # fmt: skip
        assert answer.status == 200, (target, answer)
        assert_hidden(answer)
    for target in refused_spellings(image_id):
        op = [{"op": "replace", "path": "/x_protected", "value": "changed"}]
        answer = stack.proxied("PATCH", target, {**MEMBER, **media}, op)
        assert answer.status in (400, 404), (target, answer)
    stored = stack.stored(image_id)
    assert stored["x_secret"] == SECRET and stored["x_protected"] == "orig"


def test_members_flow_through_other_spellings(stack: Stack) -> None:
    image_id = stack.create(x_secret=SECRET, visibility="shared")
    json_type = {"Content-Type": "application/json"}
    answer = stack.proxied(
        "POST", f"/v2/./images/{image_id}/members", {**ADMIN, **json_type}, {"member": OTHER}
    )
    assert answer.status == 200, answer
    answer = stack.proxied(
        "PUT", f"/images/{image_id}/members/{OTHER}",
        {**OUTSIDER, **json_type, "Accept": f"{VND}v2"}, {"status": "accepted"},
    )  # fmt: skip
    assert answer.status == 200 and answer.json()["status"] == "accepted", answer
    for target, extra in spellings(image_id):
        answer = stack.proxied("GET", target, {**OUTSIDER, **extra})
        assert answer.status == 200, (target, answer)
        assert_hidden(answer)
    listing = stack.proxied(
        "GET", "/images?member_status=accepted", {**OUTSIDER, "Accept": f"{VND}v2"}
    )
    assert listing.status == 200 and image_id in listing.body.decode()
    assert_hidden(listing)
    members = stack.proxied("GET", f"/v2/x/../images/{image_id}/members", ADMIN)
    assert members.status == 200 and members.json()["members"][0]["member_id"] == OTHER


def test_stage_import_and_tasks_through_other_spellings(stack: Stack) -> None:
    image_id = stack.create(x_secret=SECRET)
    staged = stack.proxied(
        "PUT", f"/v2/%2e/images/{image_id}/stage",
        {**MEMBER, "Content-Type": "application/octet-stream"}, b"data" * 1024,
    )  # fmt: skip
    assert staged.status == 204, staged
    # glance-download copies properties past any filter: refused on every spelling.
    for target, extra in spellings(image_id, "/import"):
        answer = stack.proxied(
            "POST", target, {**MEMBER, **extra, "Content-Type": "application/json"},
            {"method": {"name": "glance-download", "glance_image_id": image_id,
                        "glance_region": "r"}},
        )  # fmt: skip
        assert answer.status == 403, (target, answer)
    task_input = {
        "import_from": "http://10.255.255.1/x.img",
        "import_from_format": "raw",
        "image_properties": {"name": "t", "disk_format": "raw", "container_format": "bare"},
    }
    for target, extra in [
        ("/tasks", {"Accept": f"{VND}v2"}),
        ("/v2/./tasks", {}),
        ("/v2/x/../tasks", {}),
    ]:
        body = {"type": "import", "input": {**task_input, "image_properties": {
            **task_input["image_properties"], "x_secret": "member-set"}}}  # fmt: skip
        answer = stack.proxied(
            "POST", target, {**MEMBER, **extra, "Content-Type": "application/json"}, body
        )
        assert answer.status == 403, (target, answer)
    created = stack.proxied(
        "POST", "/v2/tasks", {**ADMIN, "Content-Type": "application/json"},
        {"type": "import", "input": {**task_input, "image_properties": {
            **task_input["image_properties"], "x_secret": SECRET}}},
    )  # fmt: skip
    assert created.status == 201, (created, created.body)
    task_id = created.json()["id"]
    for target, extra in spellings(task_id):
        target = target.replace("images", "tasks").replace("%69mages", "%74asks")
        answer = stack.proxied("GET", target, {**MEMBER, **extra})
        assert answer.status == 200, (target, answer)
        assert_hidden(answer)
    for target, extra in spellings(image_id, "/tasks"):
        answer = stack.proxied("GET", target, {**MEMBER, **extra})
        assert answer.status == 200, (target, answer)
        assert_hidden(answer)


def test_a_client_cannot_strip_identity_headers_with_connection(stack: Stack) -> None:
    document = {"name": "owned", "disk_format": "raw", "container_format": "bare"}
    answer = stack.proxied(
        "POST", "/v2/images",
        {**MEMBER, "Content-Type": "application/json",
         "Connection": "X-Project-Id, X-Tenant-Id, X-Roles, X-User-Id"},
        document,
    )  # fmt: skip
    assert answer.status == 201, answer
    assert stack.stored(answer.json()["id"])["owner"] == PROJECT


@pytest.mark.parametrize(
    "host",
    [
        "a;for=6.6.6.6;proto=https;x=",
        'a"b',
        "a,b",
        "a b",
        "a/b",
        "user@host",
        "[::1",
        "host:port",
    ],
)
def test_hostile_host_values_are_refused(stack: Stack, host: str) -> None:
    answer = stack.proxied("GET", "/versions", {**MEMBER, "Host": host})
    assert answer.status == 400, answer
    assert answer.json()["error"]["code"] == 400


@pytest.mark.parametrize("target", ["/", "/versions", "/v2.1/x/../../versions"])
def test_version_links_name_the_proxy(stack: Stack, target: str) -> None:
    """Glance parses the proxy's forwarding headers (enable_proxy_headers_parsing)."""
    for host in (f"127.0.0.1:{stack.proxy}", "images.example", "[::1]:8443"):
        answer = stack.proxied("GET", target, {**MEMBER, "Host": host})
        assert answer.status in (200, 300), answer
        hrefs = {link["href"] for v in answer.json()["versions"] for link in v["links"]}
        assert hrefs and all(h.startswith(f"http://{host}/v2") for h in hrefs), (host, hrefs)


@pytest.mark.parametrize(
    "header", ["X-Forwarded-Proto: https", "X-Forwarded-Ssl: on", "X-Forwarded-Protocol: https",
               "Forwarded: proto=https;host=evil", "X-Forwarded-Host: evil"]
)  # fmt: skip
def test_client_forwarding_headers_do_not_change_glance_links(stack: Stack, header: str) -> None:
    name, _, value = header.partition(": ")
    answer = stack.proxied("GET", "/versions", {**MEMBER, name: value})
    hrefs = {link["href"] for v in answer.json()["versions"] for link in v["links"]}
    assert all(h.startswith(f"http://127.0.0.1:{stack.proxy}/v2") for h in hrefs), hrefs


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
