"""The `autograde` command line."""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from service.config import REPOSITORY_ROOT, Environment, ExecutorKind, Settings, get_settings
from service.db import make_engine, make_session_factory, transaction
from service.errors import AppError, MaterialError
from service.migrations import upgrade_database

app = typer.Typer(
    help="autograde: grading service for deep-learning courses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
assignments_app = typer.Typer(help="Assignment material.", no_args_is_help=True)
grades_app = typer.Typer(help="Grade books.", no_args_is_help=True)
users_app = typer.Typer(help="Users, enrollments and tokens.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
lti_app = typer.Typer(help="LTI 1.3: the tool's signing keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(assignments_app, name="assignments")
app.add_typer(grades_app, name="grades")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(lti_app, name="lti")
console = Console()
logger = logging.getLogger("service.cli")
# `autograde worker` / `serve` exit with this when the sandbox cannot run here.
EXIT_NO_SANDBOX = 3


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as error:
        console.print(f"[red]Bad settings:[/red] {error}")
        raise typer.Exit(2) from None
    for warning in settings.startup_warnings():
        Console(stderr=True).print(f"[bold yellow]WARNING:[/bold yellow] {warning}", highlight=False)
    return settings


def _refuse_to_grade_without_a_sandbox(settings: Settings) -> None:
    """Before any grading process starts: one real sandboxed run. Without it every notebook would be
    graded `error`; better not to start (unsafe-dev mode skips the check, as it skips the sandbox)."""
    from service.health.service import sandbox_problem_here

    problem = sandbox_problem_here(settings)
    if problem is not None:
        logger.error("refusing to start: the sandbox cannot run here: %s", problem)
        raise typer.Exit(EXIT_NO_SANDBOX)


def _configure_logging(settings: Settings) -> None:
    from service.logs import configure_logging

    configure_logging(settings.log_format)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database."""
    engine = make_engine(_settings())
    upgrade_database(engine)
    engine.dispose()
    console.print("database is at the latest schema")


@assignments_app.command("load")
def assignments_load(
    path: Annotated[Path, typer.Argument(help="Folder holding assignment.toml")],
    course: Annotated[str, typer.Option(help="Course slug (created if missing)")],
) -> None:
    """Validate material and store it in the course; a changed assignment gets a new version.
    The same material may be loaded into several courses, each keeping its own versions."""
    from service.assignments.material import read_material
    from service.assignments.service import load_assignment
    from service.policies.service import remeasure_after_load

    try:
        loaded = read_material(path)
    except MaterialError as error:
        console.print(f"[red]Invalid material:[/red] {error}")
        raise typer.Exit(1) from None
    engine = make_engine(_settings())
    factory = make_session_factory(engine)
    try:
        with transaction(factory) as session:
            outcome = load_assignment(session, course, loaded)
            if outcome.changed:  # its [policy] may move deadlines: the stored lateness follows
                remeasure_after_load(session, course, outcome.slug)
    except AppError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    state = "stored as" if outcome.changed else "unchanged, still"
    console.print(f"{outcome.slug}: {state} version {outcome.version}")


@grades_app.command("export")
def grades_export(
    course: Annotated[str, typer.Option(help="Course slug")],
    assignment: Annotated[str, typer.Option(help="Assignment slug within the course")],
    output: Annotated[Path | None, typer.Option(help="CSV file (default: standard output)")] = None,
) -> None:
    """The gradebook of a course's assignment as CSV: every student, the answer that counts per question."""
    from service.grades.service import export_csv

    engine = make_engine(_settings())
    try:
        with transaction(make_session_factory(engine), read_only=True) as session:
            text = export_csv(session, course, assignment)
    except AppError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@users_app.command("add")
def users_add(
    username: str,
    course: Annotated[str, typer.Option(help="Course slug (created if missing)")],
    role: Annotated[str, typer.Option(help="student, ta or instructor")] = "student",
) -> None:
    """Create a user (if new), enroll them, and print a fresh API token."""
    from service.auth.service import issue_token
    from service.courses.service import enroll, ensure_course, ensure_user
    from service.models import Role

    try:
        parsed_role = Role(role)
    except ValueError:
        console.print("[red]role must be student, ta or instructor[/red]")
        raise typer.Exit(2) from None
    engine = make_engine(_settings())
    with transaction(make_session_factory(engine)) as session:
        user = ensure_user(session, username)
        enroll(session, ensure_course(session, course), user, parsed_role)
        token = issue_token(session, user.id, "cli")
    engine.dispose()
    typer.echo(token)


@tokens_app.command("revoke")
def tokens_revoke(username: str) -> None:
    """Revoke every live API token of a user (they are refused from the next request on)."""
    from service.auth.service import revoke_tokens

    engine = make_engine(_settings())
    try:
        with transaction(make_session_factory(engine)) as session:
            revoked = revoke_tokens(session, username)
    except AppError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"{username}: {revoked} token(s) revoked")


@lti_app.command("rotate-key")
def lti_rotate_key() -> None:
    """A new RSA key pair signs the tool's messages from now on (token requests, deep linking
    answers); the previous key stays in the published JWKS for AUTOGRADE_LTI_KEY_GRACE_SECONDS, so
    platforms that cached it keep verifying what it signed."""
    from service.lti.service import rotate_tool_key

    settings = _settings()
    engine = make_engine(settings)
    try:
        with transaction(make_session_factory(engine)) as session:
            kid = rotate_tool_key(session, settings)
    finally:
        engine.dispose()
    typer.echo(
        f"new signing key {kid}; the previous one stays published for {settings.lti_key_grace_seconds} s"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: AUTOGRADE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: AUTOGRADE_PORT")] = None,
) -> None:
    """Run the API, with AUTOGRADE_LOCAL_WORKERS grading processes beside it."""
    from service.health.service import grades_in_this_process
    from service.main import create_app

    settings = _settings()
    _configure_logging(settings)
    if grades_in_this_process(settings):
        _refuse_to_grade_without_a_sandbox(settings)
    uvicorn.run(
        create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info"
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Grading processes", min=1)] = 1,
    queues: Annotated[str, typer.Option(help="Celery queues to consume, comma-separated: cpu, gpu")] = "cpu",
    device: Annotated[str | None, typer.Option(help="cpu or cuda[:N] (default: AUTOGRADE_DEVICE)")] = None,
) -> None:
    """Run grading processes. With AUTOGRADE_EXECUTOR=celery: a Celery worker consuming QUEUES
    from the broker; otherwise processes that claim jobs by polling the database (for API nodes
    started with AUTOGRADE_LOCAL_WORKERS=0, or more capacity on other machines)."""
    settings = _settings()
    if device is not None:
        try:
            settings = Settings.model_validate(settings.model_dump() | {"device": device})
        except ValueError as error:
            console.print(f"[red]Bad device:[/red] {error}")
            raise typer.Exit(2) from None
    if settings.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            console.print(f"[red]--device {settings.device}: CUDA is not available on this machine.[/red]")
            raise typer.Exit(2)
    _configure_logging(settings)
    _refuse_to_grade_without_a_sandbox(settings)
    if settings.executor is ExecutorKind.CELERY:
        _celery_worker(settings, concurrency, queues)
        return
    from service.worker.local import LocalExecutor

    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda _signal, _frame: stop.set())
    executor = LocalExecutor(settings, concurrency)
    executor.start()
    console.print(f"{concurrency} grading process(es) running; Ctrl-C or SIGTERM stops them")
    try:
        stop.wait()
    finally:
        executor.stop()


def _celery_worker(settings: Settings, concurrency: int, queues: str) -> None:
    from service.models import Queue
    from service.worker.celery_executor import create_celery_app

    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(names) - set(Queue))
    if not names or unknown:
        console.print(f"[red]--queues takes {', '.join(Queue)}; got {queues!r}[/red]")
        raise typer.Exit(2)
    celery_app = create_celery_app(settings)
    # e.g. cpu@host, gpu-cuda@host: what a node consumes and grades on, in Celery's own tooling.
    node_name = "-".join(names) + ("" if settings.device == "cpu" else "-" + settings.device.replace(":", ""))
    # SIGTERM (and SIGINT) make Celery finish the jobs in hand, then exit: a warm shutdown.
    celery_app.worker_main(
        [
            "worker",
            f"--queues={','.join(names)}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--loglevel=INFO",
            f"--hostname={node_name}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def demo() -> None:
    """Development: migrate, load hw5 and layers into course `demo`, print tokens and curl examples, serve."""
    from service.demo import DEMO_COURSE, LAYERS_ASSIGNMENT_FOLDER, prepare_demo
    from service.main import create_app

    settings = _settings()
    if settings.env is not Environment.DEVELOPMENT:
        console.print("[red]The demo runs only with AUTOGRADE_ENV=development.[/red]")
        raise typer.Exit(2)
    _configure_logging(settings)
    _refuse_to_grade_without_a_sandbox(settings)
    engine = make_engine(settings)
    upgrade_database(engine)
    with transaction(make_session_factory(engine)) as session:
        accounts = prepare_demo(session, settings)
    engine.dispose()
    base = f"http://{settings.host}:{settings.port}"
    body = '{"answers": {"q1_1": {"choices": [2, 3]}, "q3_1": {"value": [6, 1, 2]}}}'
    console.print(f"[bold]autograde demo[/bold] on {base} (database: {settings.database_url})")
    for slug, version in accounts.versions.items():
        console.print(f"assignment {slug} version {version}, course {DEMO_COURSE}")
    console.print(f"student token: {accounts.student_token}")
    console.print(f"TA token:      {accounts.ta_token}")
    console.print("Submit an answer, then fetch the URL it returns in Location:", highlight=False)
    submissions_url = f"{base}/api/v1/courses/{DEMO_COURSE}/assignments/{accounts.assignment}/submissions"
    console.print(
        f"  curl -s -X POST {submissions_url} "
        f"-H 'Authorization: Bearer {accounts.student_token}' -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  curl -s {base}/api/v1/submissions/<id> -H 'Authorization: Bearer {accounts.student_token}'",
        highlight=False,
        soft_wrap=True,
    )
    layers_solution = LAYERS_ASSIGNMENT_FOLDER.relative_to(REPOSITORY_ROOT) / "solution.ipynb"
    console.print("Upload the layers notebook (from the repository's root):", highlight=False)
    console.print(
        f"  curl -s -X POST {base}/api/v1/courses/{DEMO_COURSE}/assignments/layers/submissions "
        f"-H 'Authorization: Bearer {accounts.student_token}' -F 'answers={{}}' -F q3=@{layers_solution}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"API docs: {base}/docs", highlight=False)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    app()
