"""The release artifacts: an sdist and a wheel built with ``python -m build``, installed and used.

What this shows (issue 23): the wheel holds every file the package reads at
run time, the samples and the licence; its version comes from git
(setuptools-scm, docs/releasing.md); installed into a fresh virtualenv next
to Glance 33 it answers ``propguard --version``, lints the shipped samples,
migrates a relations store and filters a request through a paste-loaded
filter, as README's "Installing it in glance-api" says: its ``--version`` and
``lint`` lines are run as written, with the test's virtualenv for
``/opt/glance``, and its build and install lines are compared with the steps
taken here. The documents are installed too, where the systemd units'
``Documentation=`` points.

How the install stays honest and fast (about 30 s instead of minutes): the
virtualenv is new and empty; the wheel goes in with ``pip install --no-index``
(so pip itself checks every requirement of the wheel is satisfied), and the
third-party packages come from the test's own environment through one
``.pth`` line naming a directory of symlinks to that environment's
site-packages *without any propguard entry* (no source tree, no editable
finder, no dist-info). Every propguard file the checks touch is the wheel's:
the tests assert the package and its only distribution live in the new
virtualenv. The build runs with ``--no-isolation`` (setuptools, setuptools-scm
and wheel from the test extra, no index needed); a release builds isolated.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Non-Python files loaded at run time (importlib.resources / __file__), by package path.
RUNTIME_DATA = (
    "propguard/proxy/serve.ini",
    "propguard/relations/migrations/script.py.mako",
    "propguard/glance/collations/utf8mb3_general_ci.json",
)
#: The samples installed under <prefix>/ (setup.cfg [options.data_files]).
DATA_FILES = {
    "share/propguard/paste.ini.example": "paste.ini.example",
    "share/propguard/policies/production.conf": "policies/production.conf",
    "share/propguard/policies/glance-compatible-roles.conf": "policies/glance-compatible-roles.conf",
    "share/propguard/policies/property-protections-policies.conf": (
        "policies/property-protections-policies.conf"
    ),
    "share/propguard/policies/policy.yaml": "policies/policy.yaml",
    "share/propguard/systemd/propguard-serve.service": "etc/systemd/propguard-serve.service",
    "share/propguard/systemd/propguard-notify-filter.service": (
        "etc/systemd/propguard-notify-filter.service"
    ),
    "etc/propguard/propguard.conf.sample": "etc/propguard/propguard.conf.sample",
    "etc/propguard/propguard-config-generator.conf": "etc/propguard/propguard-config-generator.conf",
    # The documents, in the checkout's layout (the README's links hold).
    "share/doc/propguard/README.md": "README.md",
    **{
        f"share/doc/propguard/docs/{doc.name}": f"docs/{doc.name}" for doc in ROOT.glob("docs/*.md")
    },
}
#: Where the README installs propguard (glance-api's virtualenv), and the units expect it.
README_PREFIX = "/opt/glance"
UNIT_PREFIX = "/opt/propguard"
#: The README's install commands, as written, and the step of this test each one is.
README_INSTALL = {
    "python3.11 -m venv /tmp/build && /tmp/build/bin/pip install build": (
        "the build front end: here the test extra's build, setuptools and setuptools-scm"
    ),
    "/tmp/build/bin/python -m build": "the artifacts fixture (with --no-isolation)",
    "/opt/glance/bin/pip install dist/propguard-*-py3-none-any.whl": (
        "the installed fixture (with --no-index, into a fresh virtualenv beside Glance 33)"
    ),
    "/opt/glance/bin/propguard --version": "test_version_command, as written",
    "/opt/glance/bin/propguard lint --rules-format auto /opt/glance/share/propguard/policies": (
        "test_lint_on_the_shipped_samples, as written"
    ),
}


def _run(
    cmd: list[str | os.PathLike[str]], *, own_env: bool = False, **kw
) -> subprocess.CompletedProcess[str]:
    """Run a command, its output kept for the assertion message.

    No PYTHONPATH leaks into the installed virtualenv's commands (pip among
    them: a source tree on it would count as propguard already installed);
    ``own_env`` (the build, in this environment) keeps it.
    """
    drop = () if own_env else ("PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(kw.pop("env", {}))
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, env=env, **kw
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _git(*args: str) -> str:
    return _ok(_run(["git", "-C", ROOT, *args])).strip()


def _readme_install_commands() -> list[str]:
    """The commands of the README's install block, comments dropped."""
    section = (
        (ROOT / "README.md")
        .read_text(encoding="utf-8")
        .split("## Installing it in glance-api", 1)[1]
    )
    block = re.search(r"```sh\n(.*?)\n\s*```", section, re.S)
    assert block, "no sh block in README's install section"
    lines = (line.split("  #", 1)[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


def _readme_command(start: str, venv: Path) -> list[str]:
    """The README's command starting with ``start``, its /opt/glance being ``venv``."""
    (command,) = [c for c in _readme_install_commands() if c.startswith(start)]
    return [word.replace(README_PREFIX, str(venv)) for word in shlex.split(command)]


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path

    @property
    def version(self) -> str:
        return self.wheel.name.split("-")[1]


@dataclass(frozen=True)
class Install:
    venv: Path
    workdir: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def python(self, script: str, *args: str | os.PathLike[str]) -> str:
        path = self.workdir / "script.py"
        path.write_text(textwrap.dedent(script))
        return _ok(_run([self.bin("python"), path, *args], cwd=self.workdir))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """``python -m build`` on the checkout: the sdist, then the wheel built from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    _ok(
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], own_env=True)
    )
    (sdist,) = out.glob("propguard-*.tar.gz")
    (wheel,) = out.glob("propguard-*-py3-none-any.whl")
    return Artifacts(sdist, wheel)


def _shadow_site_packages(target: Path) -> Path:
    """Symlinks to this environment's site-packages entries, every propguard one left out."""
    target.mkdir()
    sources = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    for source in sources:
        for entry in source.iterdir():
            if "propguard" in entry.name.lower() or entry.suffix == ".pth":
                continue
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return target


@pytest.fixture(scope="module")
def installed(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Install:
    """A fresh virtualenv with the wheel installed; third-party packages linked in."""
    base = tmp_path_factory.mktemp("install")
    venv = base / "venv"
    _ok(
        _run(
            [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv]
        )
    )
    deps = _shadow_site_packages(base / "deps")
    site = Path(
        _ok(
            _run(
                [
                    venv / "bin" / "python",
                    "-c",
                    "import sysconfig;print(sysconfig.get_paths()['purelib'])",
                ]
            )
        ).strip()
    )
    (site / "_test_third_party.pth").write_text(f"{deps}\n")
    # --no-index: nothing fetched; pip fails if a requirement of the wheel is missing.
    _ok(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                venv / "bin" / "python",
                "install",
                "--no-index",
                "--no-cache-dir",
                "--disable-pip-version-check",
                artifacts.wheel,
            ]
        )
    )
    workdir = base / "work"
    workdir.mkdir()
    return Install(venv, workdir)


# -- the artifacts -------------------------------------------------------------


def _package_files() -> set[str]:
    """Every file of the package in the checkout (tracked or new, not ignored)."""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "propguard").split("\n")
    return {p for p in listed if p and (ROOT / p).is_file()}


def test_wheel_holds_every_package_file_and_the_samples(artifacts: Artifacts) -> None:
    names = set(zipfile.ZipFile(artifacts.wheel).namelist())
    missing = sorted(_package_files() - names)
    assert not missing, f"files of the package not in the wheel: {missing}"
    assert set(RUNTIME_DATA) <= names
    data = f"propguard-{artifacts.version}.data/data/"
    for installed, source in DATA_FILES.items():
        assert (
            zipfile.ZipFile(artifacts.wheel).read(data + installed) == (ROOT / source).read_bytes()
        )


def test_wheel_metadata_carries_the_licence(artifacts: Artifacts) -> None:
    wheel = zipfile.ZipFile(artifacts.wheel)
    info = f"propguard-{artifacts.version}.dist-info/"
    metadata = wheel.read(info + "METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert f"Version: {artifacts.version}" in metadata.splitlines()
    licence = wheel.read(info + "licenses/LICENSE")
    assert licence == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0, January 2004" in licence
    assert b"END OF TERMS AND CONDITIONS" in licence


def test_sdist_holds_every_tracked_file(artifacts: Artifacts) -> None:
    prefix = f"propguard-{artifacts.version}/"
    with tarfile.open(artifacts.sdist) as sdist:
        names = {n.removeprefix(prefix) for n in sdist.getnames()}
        pkg_info = sdist.extractfile(prefix + "PKG-INFO").read().decode()  # type: ignore[union-attr]
    tracked = {p for p in _git("ls-files").split("\n") if (ROOT / p).is_file()}
    assert not sorted(tracked - names)
    assert f"Version: {artifacts.version}" in pkg_info.splitlines()


def _expected_version() -> re.Pattern[str]:
    """What setuptools-scm derives from git: a tag, or a dev release counted from one (or root)."""
    commit = _git("rev-parse", "--short=7", "HEAD")
    described = _run(["git", "-C", ROOT, "describe", "--tags", "--abbrev=0"])
    if described.returncode != 0:  # no tag (CI's clone): 0.0.1.devN, N = commits on HEAD
        count = _git("rev-list", "--count", "HEAD")
        return re.compile(rf"0\.0\.1\.dev{count}\+g{commit}[0-9a-f]*(\.d\d{{8}})?")
    tag = described.stdout.strip()
    distance = _git("rev-list", "--count", f"{tag}..HEAD")
    release = re.escape(tag.removeprefix("v"))
    if distance == "0":
        return re.compile(rf"{release}(\+d\d{{8}})?")
    return re.compile(rf"\d+(\.\d+)*\.dev{distance}\+g{commit}[0-9a-f]*(\.d\d{{8}})?")


def test_version_comes_from_git(artifacts: Artifacts) -> None:
    assert _expected_version().fullmatch(artifacts.version), artifacts.version


# -- the installed wheel -----------------------------------------------------------


def test_install_is_the_wheel_beside_glance_33(installed: Install) -> None:
    out = installed.python(
        """
        import json, importlib.metadata as md, propguard, glance
        dists = [d for d in md.distributions() if d.metadata["Name"] == "propguard"]
        print(json.dumps({
            "package": propguard.__file__,
            "dists": [str(d.locate_file("")) for d in dists],
            "files": sorted({str(d.locate_file(f).resolve().parent) for d in dists for f in d.files}),
            "glance": md.version("glance"),
            "keystonemiddleware": md.version("keystonemiddleware"),
        }))
        """
    )
    found = json.loads(out)
    venv = str(installed.venv.resolve())
    assert found["package"].startswith(str(installed.venv))
    assert len(found["dists"]) == 1 and found["dists"][0].startswith(str(installed.venv))
    assert all(f.startswith(venv) for f in found["files"]), found["files"]
    assert found["glance"] == "33.0.0"
    assert int(found["keystonemiddleware"].split(".")[0]) >= 13


def test_readme_install_section_is_what_this_test_does() -> None:
    """README: "the README's install section is exactly what the test does" (issue 23)."""
    assert _readme_install_commands() == list(README_INSTALL), (
        "README's install commands changed: update README_INSTALL and the steps here with them"
    )


def test_version_command(installed: Install, artifacts: Artifacts) -> None:
    command = _readme_command(f"{README_PREFIX}/bin/propguard --version", installed.venv)
    assert command == [str(installed.bin("propguard")), "--version"]
    out = _ok(_run(command, cwd=installed.workdir))
    assert out.strip() == f"propguard {artifacts.version}"


def test_lint_on_the_shipped_samples(installed: Install) -> None:
    samples = installed.venv / "share" / "propguard" / "policies"
    # The samples are of both formats: each read in the one it is written in.
    command = _readme_command(f"{README_PREFIX}/bin/propguard lint", installed.venv)
    assert command == [
        str(installed.bin("propguard")),
        "lint",
        "--rules-format",
        "auto",
        str(samples),
    ]
    result = _run(command, cwd=installed.workdir)
    _ok(result)
    assert "4 files" in result.stderr and "0 errors" in result.stderr, result.stderr


def test_units_documentation_is_installed(installed: Install) -> None:
    """Each unit's ``Documentation=file:`` names a document the wheel installs under its prefix."""
    for unit in (ROOT / "etc" / "systemd").glob("*.service"):
        urls = [
            line.split("=", 1)[1].strip()
            for line in unit.read_text().splitlines()
            if line.startswith("Documentation=")
        ]
        assert urls, unit.name
        for url in urls:
            assert url.startswith(f"file:{UNIT_PREFIX}/share/doc/propguard/"), (unit.name, url)
            path = installed.venv / url.removeprefix(f"file:{UNIT_PREFIX}/")
            assert path.is_file(), (unit.name, url)


def test_runtime_data_from_the_install(installed: Install) -> None:
    """Every collation table, the shipped serve.ini and the migrations, read as the code reads them."""
    out = installed.python(
        """
        import configparser, json
        from propguard.glance import collation
        from propguard.proxy import server
        from propguard.relations import store
        foldings = [collation.folding(name).name for name in collation.COLLATIONS]
        ini = configparser.RawConfigParser(strict=False)
        ini.read(server.shipped_ini())
        print(json.dumps({"foldings": foldings, "ini": server.shipped_ini(),
                          "sections": ini.sections(), "head": store.head_revision()}))
        """
    )
    found = json.loads(out)
    assert len(found["foldings"]) >= 5
    assert found["ini"].startswith(str(installed.venv))
    assert "pipeline:api" in found["sections"]
    assert found["head"]
    db = installed.workdir / "relations.db"
    _ok(
        _run(
            [installed.bin("propguard"), "db", "upgrade", "--connection", db], cwd=installed.workdir
        )
    )
    current = _ok(
        _run(
            [installed.bin("propguard"), "db", "current", "--connection", db], cwd=installed.workdir
        )
    )
    assert found["head"] in current


def test_request_through_the_paste_loaded_filter(installed: Install) -> None:
    """``use = egg:propguard#propguard`` resolved from the wheel's entry points, shipped rules."""
    rules = installed.venv / "share" / "propguard" / "policies" / "production.conf"
    ini = installed.workdir / "filter.ini"
    ini.write_text(
        f"[filter:propguard]\nuse = egg:propguard#propguard\nrules_file = {rules}\n"
        "name_collation = binary\n"
    )
    out = installed.python(
        """
        import json, sys
        from paste.deploy import loadfilter
        from webob import Request

        seen = []

        def glance(environ, start_response):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            seen.append(json.loads(environ["wsgi.input"].read(length)))
            start_response("201 Created", [("Content-Type", "application/json")])
            return [b'{"id": "1"}']

        guarded = loadfilter("config:" + sys.argv[1], name="propguard")(glance)

        def create(roles):
            req = Request.blank(
                "/v2/images", method="POST", content_type="application/json",
                body=json.dumps({"name": "probe", "billing_code": "42"}).encode(),
                headers={"X-Identity-Status": "Confirmed", "X-Roles": roles,
                         "X-Project-Id": "p1", "X-User-Id": "u1"})
            # what auth_token (or propguard's JWT filter) marks: a validated identity
            req.environ["keystone.token_auth"] = object()
            return req.get_response(guarded)

        member, admin = create("member"), create("admin")
        print(json.dumps({"member": [member.status_int, member.json_body],
                          "admin": admin.status_int, "seen": seen}))
        """,
        ini,
    )
    found = json.loads(out)
    assert found["member"][0] == 403
    assert "billing_code" in found["member"][1]["error"]["message"]
    assert found["admin"] == 201
    assert found["seen"] == [{"name": "probe", "billing_code": "42"}]


# -- release notes -------------------------------------------------------------------


def test_release_notes_lint_and_report() -> None:
    """reno (the ecosystem's release-notes tool) accepts the notes and renders them from git."""
    reno = [sys.executable, "-c", "import sys; from reno.main import main; sys.exit(main())"]
    _ok(_run([*reno, "lint"], cwd=ROOT, own_env=True))
    report = _ok(_run([*reno, "report", "--no-show-source"], cwd=ROOT, own_env=True))
    assert "Prelude" in report and "Upgrade Notes" in report, report[:2000]
    notes = list((ROOT / "releasenotes" / "notes").glob("*.yaml"))
    assert any(n.name.startswith("propguard-prelude-") for n in notes)
