"""Developer sessions: ``nox -s tests lint typecheck bench docs``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (Redis tests need a redis-server binary on PATH)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check."""
    session.install("ruff")
    session.run(
        "ruff", "format", "--check", "asyncllm", "tests", "benchmarks", "examples", "noxfile.py"
    )
    session.run("ruff", "check", "asyncllm", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[lint]")
    session.run("mypy", "asyncllm")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in quick mode (pass --full via posargs for full runs)."""
    session.install("-e", ".[bench,test]")
    quick = [] if "--full" in session.posargs else ["--quick"]
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *quick)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site with ``mkdocs build --strict`` (warnings fail) and run every example
    in docs/ and examples/ (they are also part of the test suite)."""
    session.install("-e", ".[docs,test]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "tests/test_docs.py", "tests/examples", *session.posargs)
