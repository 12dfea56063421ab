"""requirements.txt is what goes into deployment.zip: every runtime dependency, pinned to the
version the tests ran, so the package cannot pick up a different botocore than the one tested."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
# the Lambda runtime the package is built for (Chalice packages for the interpreter it runs on)
LAMBDA_MARKERS = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?==[A-Za-z0-9.+!-]+$")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    extras: frozenset[str]


def parse_pins(text: str) -> tuple[dict[str, Pin], list[str]]:
    """The ``name[extras]==version`` lines of a requirements file, and every other line that is
    not blank, a comment or ``-r``/``-c`` include (a range, a marker, a URL: a problem)."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith(("-r ", "-c ")):
            continue
        if not _PIN.match(line):
            problems.append(f"not name==version: {line!r}")
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in pins:
            problems.append(f"pinned twice: {req.name}")
        pins[name] = Pin(name, str(next(iter(req.specifier)).version), frozenset(req.extras))
    return pins, problems


def unpinned_dependencies(
    pins: Mapping[str, Pin],
    requires: Callable[[str], Iterable[str]],
    markers: Mapping[str, str] = LAMBDA_MARKERS,
) -> list[str]:
    """Runtime requirements of the pinned dists (their markers evaluated for ``markers``, with the
    extras asked for) that are not pinned, or whose pin does not satisfy them."""
    problems: list[str] = []
    extras = {name: set(pin.extras) for name, pin in pins.items()}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in pins] + [(n, e) for n, p in pins.items() for e in p.extras]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in done or name not in pins:
            continue
        done.add((name, extra))
        for line in requires(name):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                problems.append(f"{name}: unreadable requirement {line!r}")
                continue
            if req.marker is None or req.marker.evaluate({**markers, "extra": ""}):
                if extra:
                    continue  # a base requirement: checked once, without the extra
            elif not req.marker.evaluate({**markers, "extra": extra}):
                continue
            dep = canonicalize_name(req.name)
            why = f"{name}{f'[{extra}]' if extra else ''} requires {line}"
            if dep not in pins:
                problems.append(f"{why}, not pinned")
                continue
            if not req.specifier.contains(Version(pins[dep].version), prereleases=True):
                problems.append(f"{why}, pinned {pins[dep].version}")
            wanted = set(req.extras) - extras[dep]
            if wanted:
                problems.append(f"{why}, pinned without {sorted(wanted)}")
            todo += [(dep, "")] + [(dep, e) for e in req.extras]
    return sorted(set(problems))


def drifted(pins: Mapping[str, Pin], installed: Callable[[str], str | None]) -> list[str]:
    """Pins whose version is not the one installed (``None``: not installed)."""
    found = {name: installed(name) for name in pins}
    return [
        f"{name}=={pin.version}, installed {found[name] or 'nothing'}"
        for name, pin in sorted(pins.items())
        if found[name] is None or Version(found[name] or "0") != Version(pin.version)
    ]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _requires(name: str) -> list[str]:
    return metadata.distribution(name).requires or []


def _runtime() -> dict[str, Pin]:
    pins, problems = parse_pins((ROOT / "requirements.txt").read_text())
    assert problems == []
    return pins


def test_every_runtime_requirement_is_an_exact_pin() -> None:
    pins = _runtime()
    assert {"boto3", "botocore", "pynamodb", "aws-lambda-powertools"} <= set(pins)


def test_the_runtime_pins_are_closed_under_dependencies() -> None:
    assert unpinned_dependencies(_runtime(), _requires) == []


def test_each_runtime_pin_is_the_version_the_tests_run() -> None:
    assert drifted(_runtime(), _installed) == []


def test_dev_requirements_include_the_runtime_pins_and_change_none() -> None:
    text = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text.splitlines()
    dev, problems = parse_pins(text)
    assert problems == []
    runtime = _runtime()
    assert [n for n in dev if n in runtime and dev[n].version != runtime[n].version] == []


def test_the_checks_catch_a_range_a_missing_dependency_and_drift() -> None:
    pins, problems = parse_pins(
        "# comment\n-r other.txt\npkg-a[x]==1.0\nPkg_B==2.0  # why\npkg-c>=1\npkg-d\n"
    )
    assert set(pins) == {"pkg-a", "pkg-b"} and pins["pkg-a"].extras == {"x"}
    assert problems == ["not name==version: 'pkg-c>=1'", "not name==version: 'pkg-d'"]

    requires = {
        "pkg-a": [
            "pkg-b<2",  # pinned, but outside the range
            "pkg-e; extra == 'x'",  # asked for through the extra, not pinned
            "pkg-f; extra == 'y'",  # extra not asked for: ignored
            "pkg-g; sys_platform == 'win32'",  # not on Lambda: ignored
            "pkg-h; python_version < '3.11'",  # not on 3.11: ignored
        ],
        "pkg-b": ["pkg-i>=1"],
    }
    assert unpinned_dependencies(pins, lambda n: requires.get(n, [])) == [
        "pkg-a requires pkg-b<2, pinned 2.0",
        "pkg-a[x] requires pkg-e; extra == 'x', not pinned",
        "pkg-b requires pkg-i>=1, not pinned",
    ]

    installed = {"pkg-a": "1.0", "pkg-b": "2.1"}
    assert drifted(pins, installed.get) == ["pkg-b==2.0, installed 2.1"]
    assert drifted({"pkg-z": Pin("pkg-z", "1", frozenset())}, installed.get) == [
        "pkg-z==1, installed nothing"
    ]
