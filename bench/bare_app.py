"""The bare endpoint P1 compares autograde against: the same stack doing the least useful work.

FastAPI, a SQLAlchemy sync session from the service's own `make_engine` settings (same pool), one
commit per request, served by uvicorn in one process with the same log level as `autograde
serve`. The POST validates the body with a pydantic model of the same shape as `SubmissionCreate`
(answers: dict of dicts), inserts exactly one row and answers 202 with a small JSON body. No
authentication, no assignment lookup, no grading job: that is what makes it bare.

Two request styles (--style):

  one-call  (default, as service/api.py does since c31d367) an async route that runs all of the
            request's database work (session, insert, commit, close) in ONE worker-thread call
  sync-dep  a sync route with a sync `yield` session dependency (FastAPI's tutorial pattern, and
            the service's before c31d367): three thread-pool trips per request, and it deadlocks
            when concurrency >= thread pool (40) + pool connections, until the pool times out

Usage: python bench/bare_app.py --database-url URL --port PORT [--style S] [--extra-* ...]

The --extra-* options turn it into a "ladder" for attributing autograde's cost (they are off in
the P1 baseline): N trivial sync dependencies (each one more trip through the thread pool), N
more single-row SELECTs by primary key (like autograde's token and access lookups), one more
INSERT (like autograde's grading job).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.models.base import utcnow

SUBMIT_PATH = "/bare/submissions"

metadata = MetaData()
bare_submissions = Table(
    "bench_bare_submissions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("answers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
bare_jobs = Table(
    "bench_bare_jobs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("submission_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
bare_lookup = Table(
    "bench_bare_lookup",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(64), nullable=False),
)
LOOKUP_ROWS = 100


class BareSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[str, dict[str, Any]] = Field(max_length=200)


class BareAccepted(BaseModel):
    id: int
    status: str
    created_at: datetime


class Health(BaseModel):
    status: str


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (as in service/api.py)."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Module level: the route's string annotations are resolved against the module's globals.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def _noop_dependency() -> Callable[[], None]:
    # A new function each time: FastAPI caches a dependency per callable within a request.
    def noop() -> None:
        return None

    return noop


def _insert_submission(
    session: Session, answers: dict[str, dict[str, Any]], extra_selects: int, extra_insert: bool
) -> BareAccepted:
    for index in range(extra_selects):
        session.execute(select(bare_lookup.c.name).where(bare_lookup.c.id == index)).scalar_one()
    now = utcnow()
    row_id = session.execute(
        insert(bare_submissions).values(answers=answers, created_at=now).returning(bare_submissions.c.id)
    ).scalar_one()
    if extra_insert:
        session.execute(insert(bare_jobs).values(submission_id=row_id, created_at=now))
    return BareAccepted(id=row_id, status="queued", created_at=now)


def _in_transaction(factory: sessionmaker[Session], work: Callable[[Session], BareAccepted]) -> BareAccepted:
    """As service/api.py RequestScope: open, work, commit, close, all in the calling thread."""
    session = factory()
    try:
        result = work(session)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def create_bare_app(
    database_url: str,
    style: str = "one-call",
    extra_hops: int = 0,
    extra_selects: int = 0,
    extra_insert: bool = False,
) -> FastAPI:
    engine = make_engine(Settings(database_url=database_url))
    metadata.create_all(engine)
    with engine.begin() as connection:
        if connection.execute(select(bare_lookup.c.id).limit(1)).first() is None:
            connection.execute(
                insert(bare_lookup), [{"id": i, "name": f"row {i}"} for i in range(LOOKUP_ROWS)]
            )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(title="bare", lifespan=lifespan)
    factory = make_session_factory(engine)
    app.state.session_factory = factory

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    route = app.post(
        SUBMIT_PATH,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=BareAccepted,
        dependencies=[Depends(_noop_dependency()) for _ in range(extra_hops)],
    )
    if style == "one-call":

        @route
        async def create_submission(body: BareSubmission) -> BareAccepted:
            def work(session: Session) -> BareAccepted:
                return _insert_submission(session, body.answers, extra_selects, extra_insert)

            return await run_in_threadpool(_in_transaction, factory, work)

    else:

        @route
        def create_submission_sync(body: BareSubmission, session: DbSession) -> BareAccepted:
            return _insert_submission(session, body.answers, extra_selects, extra_insert)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--style", choices=["one-call", "sync-dep"], default="one-call")
    parser.add_argument("--extra-hops", type=int, default=0, choices=range(0, 11), metavar="0..10")
    parser.add_argument("--extra-selects", type=int, default=0, choices=range(0, 11), metavar="0..10")
    parser.add_argument("--extra-insert", action="store_true")
    args = parser.parse_args()
    app = create_bare_app(
        args.database_url, args.style, args.extra_hops, args.extra_selects, args.extra_insert
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
