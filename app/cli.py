"""Command line: `python -m app --help`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app import knowledge as knowledge_files
from app import store as vector_store
from app.assistant import SAFETY_FILE, index_entries
from app.config import Settings
from app.errors import KnowledgeError
from app.safety import SafetyGate

cli = typer.Typer(
    help="Pre-infusion expectations assistant: serve, check and index the clinic's vetted knowledge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KnowledgeDir = Annotated[
    Path | None, typer.Option("--knowledge", help="Knowledge folder (default: KETAMINE_QA_KNOWLEDGE_DIR or knowledge/).")
]


def _settings(knowledge_dir: Path | None = None) -> Settings:
    settings = Settings()
    if knowledge_dir is not None:
        settings = settings.model_copy(update={"knowledge_dir": knowledge_dir})
    return settings


def _problems(settings: Settings) -> list[KnowledgeError]:
    _, problems = knowledge_files.validate(settings.knowledge_dir)
    try:
        SafetyGate.load(settings.knowledge_dir / SAFETY_FILE)
    except KnowledgeError as e:
        problems.append(e)
    return problems


def _report(problems: list[KnowledgeError]) -> None:
    typer.secho(f"{len(problems)} problem(s) in the knowledge files:", fg="red", err=True)
    for problem in problems:
        typer.echo(f"  - {problem}", err=True)


@cli.command()
def validate(knowledge_dir: KnowledgeDir = None) -> None:
    """Check every knowledge file (verbatim text, ids, fields, dates, status); list every problem."""
    settings = _settings(knowledge_dir)
    problems = _problems(settings)
    if problems:
        _report(problems)
        raise typer.Exit(1)
    knowledge = knowledge_files.load(settings.knowledge_dir)
    today = settings.current_date()
    served = knowledge.served(today)
    due = knowledge.due_within(today, settings.review_warning_days)
    typer.secho(f"OK: {len(knowledge.passages)} passages, {len(served)} served today.", fg="green")
    for passage in due:
        typer.secho(f"  due for review on {passage.review_due}: {passage.id}", fg="yellow")
    for passage in knowledge.overdue(today):
        typer.secho(f"  OVERDUE since {passage.review_due} (not served): {passage.id}", fg="red")


@cli.command()
def build(knowledge_dir: KnowledgeDir = None) -> None:
    """Embed what changed since the last build and write embeddings/ (vectors + manifest)."""
    from tqdm import tqdm

    from app.embedder import load_embedder

    settings = _settings(knowledge_dir)
    problems = _problems(settings)
    if problems:
        _report(problems)
        raise typer.Exit(1)
    knowledge = knowledge_files.load(settings.knowledge_dir)
    gate = SafetyGate.load(settings.knowledge_dir / SAFETY_FILE)
    wanted = index_entries(knowledge, gate, settings.current_date())
    embedder = load_embedder(settings.embedder, settings.model)
    previous = vector_store.load(settings.embeddings_dir)
    todo = len(previous.missing(wanted)) if previous and previous.model_id == embedder.model_id else len(wanted)
    with tqdm(total=todo, unit="text", desc="embedding") as bar:
        store, embedded = vector_store.build(embedder, wanted, previous, progress=bar.update)
    vector_store.save(store, settings.embeddings_dir)
    typer.secho(
        f"Index written to {settings.embeddings_dir}: {len(store.entries)} texts, {embedded} embedded anew.",
        fg="green",
    )


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the service (uvicorn) after checking the knowledge files."""
    import uvicorn

    problems = _problems(_settings())
    if problems:
        _report(problems)
        raise typer.Exit(1)
    uvicorn.run("app.main:app", host=host, port=port, timeout_graceful_shutdown=20, proxy_headers=False)
