"""The container image, checked without a Docker engine: deploy/Dockerfile is parsed and held to
the brief (multi-stage, slim Python 3.11 runtime without build tools, numeric non-root user,
read-only-root friendly, the entrypoint ending in sse-gateway), .dockerignore is checked to let
in everything the build copies and nothing else, and hadolint runs where it is installed.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass

import pytest

from .support import DEPLOY, REPO, lint

pytestmark = pytest.mark.deploy

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    command: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        command, _, args = (current + line).partition(" ")
        instructions.append(Instruction(command.upper(), args.strip()))
        current = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Build stages, each starting with its FROM; global ARGs before the first FROM are dropped."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.command == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    args = {}
    for instruction in instructions:
        if instruction.command == "FROM":
            break
        if instruction.command == "ARG":
            name, _, default = instruction.args.partition("=")
            args[name] = default
    return args


def base_image(stage: list[Instruction], args: dict[str, str]) -> str:
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def env(stage: list[Instruction]) -> dict[str, str]:
    values = {}
    for instruction in stage:
        if instruction.command == "ENV":
            values.update(item.split("=", 1) for item in shlex.split(instruction.args))
    return values


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def test_is_multi_stage_on_one_slim_python_311_base(instructions: list[Instruction]) -> None:
    all_stages = stages(instructions)
    assert len(all_stages) >= 2
    args = global_args(instructions)
    bases = {base_image(stage, args) for stage in all_stages}
    # One base for all stages: the copied venv's python symlink must resolve in the runtime.
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", bases.pop())
    assert all_stages[-1][0].args.endswith(" AS runtime")


def test_runtime_installs_nothing_and_copies_only_the_venv(runtime: list[Instruction]) -> None:
    # No RUN at all in the final stage: no package manager, compiler or pip step can sneak in.
    assert not [i for i in runtime if i.command == "RUN"]
    copies = [i.args.split() for i in runtime if i.command in ("COPY", "ADD")]
    from_builder = [c for c in copies if "--from=builder" in c]
    assert from_builder == [["--from=builder", "/opt/venv", "/opt/venv"]]
    assert not [i for i in runtime if i.command == "ADD"]


def test_runtime_user_is_numeric_and_not_root(runtime: list[Instruction]) -> None:
    users = [i.args for i in runtime if i.command == "USER"]
    assert users, "the runtime stage sets no USER"
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1])
    position = {i.command: n for n, i in enumerate(runtime)}
    assert position["USER"] < position["ENTRYPOINT"]


def test_runtime_environment_suits_a_read_only_root(runtime: list[Instruction]) -> None:
    values = env(runtime)
    assert values["GATEWAY_HOST"] == "0.0.0.0"
    assert values["GATEWAY_PORT"] == "8000"
    assert values["PYTHONDONTWRITEBYTECODE"] == "1"
    assert values["HOME"] == values["TMPDIR"] == "/tmp"
    assert values["PATH"].startswith("/opt/venv/bin:")
    assert "GATEWAY_WORKERS" not in values, "the entrypoint picks workers when unset"


def test_exposes_the_gateway_port_and_checks_healthz(runtime: list[Instruction]) -> None:
    assert [i.args for i in runtime if i.command == "EXPOSE"] == ["8000"]
    (healthcheck,) = [i.args for i in runtime if i.command == "HEALTHCHECK"]
    assert "/healthz" in healthcheck


def test_entrypoint_is_the_script_that_execs_sse_gateway(runtime: list[Instruction]) -> None:
    (entrypoint,) = [i.args for i in runtime if i.command == "ENTRYPOINT"]
    (program,) = json.loads(entrypoint)  # exec form: signals reach the process directly
    copies = [i.args.split() for i in runtime if i.command == "COPY"]
    (copy,) = [c for c in copies if c[-1] == f"/usr/local/bin/{program}"]
    assert "--chmod=0555" in copy, "executable, and not writable even by its owner"
    lines = (REPO / copy[-2]).read_text().strip().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert lines[-1] == 'exec sse-gateway "$@"'


# .dockerignore


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?|\[[^]]*\])", pattern.strip("/"))
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile(
        "".join(p if p.startswith("[") else table.get(p, re.escape(p)) for p in parts)
    )


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path, or any parent of it, decides."""
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    included = True
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = glob_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(p) for p in parents):
            included = negated
    return included


def copied_sources(instructions: list[Instruction]) -> list[str]:
    sources = []
    for instruction in instructions:
        if instruction.command == "COPY" and "--from=" not in instruction.args:
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            sources += words[:-1]
    return sources


def files_under(source: str) -> list[str]:
    path = REPO / source
    if path.is_file():
        return [source]
    files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [str(p.relative_to(REPO)) for p in files]


def test_build_context_has_everything_the_build_copies(instructions: list[Instruction]) -> None:
    sources = copied_sources(instructions)
    assert {"pyproject.toml", "gateway", "publisher", "deploy/docker-entrypoint.sh"} <= set(sources)
    for source in sources:
        for path in files_under(source):
            assert in_context(path), f"{path} is copied by the Dockerfile but .dockerignore'd"


def test_build_context_has_what_pyproject_needs(instructions: list[Instruction]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    readme = project["project"].get("readme")
    if isinstance(readme, str):
        assert readme in copied_sources(instructions) and in_context(readme)
    for license_file in project["project"].get("license-files", []):
        assert in_context(license_file)
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied_sources(instructions)


def test_build_context_leaves_out_the_rest() -> None:
    for path in (".git/HEAD", ".venv/bin/python", "tests/deploy/test_policy.py", "docs/deploy.md"):
        assert not in_context(path), path
    assert not in_context("gateway/__pycache__/app.cpython-311.pyc")
    assert not in_context("publisher/stray.pyc")


def test_hadolint_finds_nothing() -> None:
    lint("hadolint", "--no-color", str(DOCKERFILE))
