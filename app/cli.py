"""Command line: `python -m app --help`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from app import knowledge as knowledge_files
from app import store as vector_store
from app.assistant import SAFETY_FILE, Assistant, attach_speller, index_entries
from app.config import Settings
from app.errors import KnowledgeError
from app.lifecycle import knowledge_problems
from app.safety import SafetyGate, normalise
from app.tuning import STEPS

cli = typer.Typer(
    help="Pre-infusion expectations assistant: serve, check and index the clinic's vetted knowledge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KnowledgeDir = Annotated[
    Path | None,
    typer.Option("--knowledge", help="Knowledge folder (default: KETAMINE_QA_KNOWLEDGE_DIR or knowledge/)."),
]


def _settings(knowledge_dir: Path | None = None) -> Settings:
    settings = Settings()
    if knowledge_dir is not None:
        settings = settings.model_copy(update={"knowledge_dir": knowledge_dir})
    return settings


def _report(problems: list[KnowledgeError]) -> None:
    typer.secho(f"{len(problems)} problem(s) in the knowledge files:", fg="red", err=True)
    for problem in problems:
        typer.echo(f"  - {problem}", err=True)


def _checked_settings(knowledge_dir: Path | None = None) -> Settings:
    """Settings whose knowledge files pass every load-time check; otherwise list them all, exit 1."""
    settings = _settings(knowledge_dir)
    problems = knowledge_problems(settings)
    if problems:
        _report(problems)
        raise typer.Exit(1)
    return settings


@cli.command()
def validate(knowledge_dir: KnowledgeDir = None) -> None:
    """Check every knowledge file (verbatim text, ids, fields, dates, status); list every problem."""
    settings = _checked_settings(knowledge_dir)
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

    settings = _checked_settings(knowledge_dir)
    knowledge = knowledge_files.load(settings.knowledge_dir)
    gate = SafetyGate.load(settings.knowledge_dir / SAFETY_FILE)
    wanted = index_entries(knowledge, gate, settings.current_date())
    if settings.embedder == "onnx":
        from app.onnx_embedder import export, export_problem

        if export_problem(settings.model, settings.onnx_dir):
            typer.echo(f"Exporting {settings.model} to ONNX in {settings.onnx_dir} …")
            export(settings.model, settings.onnx_dir)
    embedder = load_embedder(settings.embedder, settings.model, settings.onnx_dir, settings.embed_threads)
    previous = vector_store.load(settings.embeddings_dir)
    todo = len(previous.missing(wanted)) if previous and previous.model_id == embedder.model_id else len(wanted)
    with tqdm(total=todo, unit="text", desc="embedding") as bar:
        store, embedded = vector_store.build(embedder, wanted, previous, progress=bar.update)
    vector_store.save(store, settings.embeddings_dir)
    from app.lifecycle import record_service

    for event in record_service(settings.knowledge_dir, knowledge, settings.current_date()):
        typer.echo(f"  history: {event['event']} {event['passage']} (version {event['version']})")
    typer.secho(
        f"Index written to {settings.embeddings_dir}: {len(store.entries)} texts, {embedded} embedded anew.",
        fg="green",
    )


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the service (uvicorn, JSON logs, drain on SIGTERM) after checking the knowledge files."""
    from app.server import return_large_blocks
    from app.server import serve as run_server

    return_large_blocks()  # before the knowledge check: its parse is the first of the start-up's temporaries
    run_server(host, port, _checked_settings())


@cli.command()
def tune(
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Do nothing when a current tuned model is there.")
    ] = False,
    steps: Annotated[
        int, typer.Option(min=1, help="Training steps (thresholds are calibrated for the default).")
    ] = STEPS,
    knowledge_dir: KnowledgeDir = None,
    labelled: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding eval/questions.yaml, tests/safety_*.yaml and the training lock "
            "embeddings/training-lock.json (default: the project)."
        ),
    ] = None,
    relock: Annotated[
        bool,
        typer.Option(
            "--relock",
            help="Train on all the labelled data now in the repository and rewrite the training lock: a new "
            "model release (check `evaluate` and the safety sets before shipping it).",
        ),
    ] = False,
) -> None:
    """Fine-tune the base model on the locked labelled data into KETAMINE_QA_MODEL's folder (~10 min on 2 cores)."""
    from app.config import ROOT
    from app.embedder import names_folder
    from app.tuning import LOCK_FILE, read_lock, recalibrate, training_data, tuning_problem, write_lock
    from app.tuning import tune as run

    settings = _checked_settings(knowledge_dir)
    target = Path(settings.model)
    if not names_folder(settings.model):
        typer.secho(
            f"KETAMINE_QA_MODEL={settings.model!r} names a package; tuning writes a folder.", fg="red", err=True
        )
        raise typer.Exit(2)
    lock_file = (labelled or ROOT) / LOCK_FILE
    lock = None if relock else read_lock(lock_file)
    if if_stale and not relock and tuning_problem(settings.base_model, target, lock) is None:
        recalibrated = recalibrate(target)
        typer.echo(f"Tuned model in {target} is current" + ("; its thresholds were updated." if recalibrated else "."))
        return
    data = training_data(settings.knowledge_dir, labelled or ROOT)
    if lock is not None:
        pinned = data.pinned(lock)
        typer.echo(pinned.report(lock))
        data = pinned.data
    typer.echo(f"Tuning {settings.base_model} on {data.summary()} …")
    run(
        settings.base_model,
        target,
        data,
        steps=steps,
        threads=settings.embed_threads or None,
        progress=typer.echo,
        lock=str(lock["fingerprint"]) if lock else None,
    )
    typer.secho(f"Tuned model written to {target}.", fg="green")
    if lock is None:
        # Written once the model is: a failed run leaves the old lock, and set-up retrains to it.
        write_lock(lock_file, data)
        typer.echo(f"Training lock written to {lock_file}: a new release; commit it once `evaluate` is checked.")


@cli.command("export-onnx")
def export_onnx(
    if_stale: Annotated[bool, typer.Option("--if-stale", help="Do nothing when a current export is there.")] = False,
) -> None:
    """Export the embedding model to ONNX (KETAMINE_QA_ONNX_DIR) for KETAMINE_QA_EMBEDDER=onnx. Needs torch."""
    from app.onnx_embedder import export, export_problem

    settings = _settings()
    if if_stale and export_problem(settings.model, settings.onnx_dir) is None:
        typer.echo(f"ONNX export in {settings.onnx_dir} is current.")
        return
    path = export(settings.model, settings.onnx_dir)
    typer.secho(f"Exported {settings.model} to {path} ({path.stat().st_size / 1e6:.0f} MB).", fg="green")


@cli.command("hash-key")
def hash_key(
    name: Annotated[str | None, typer.Option(help="Also print a KETAMINE_QA_API_KEYS entry with this name.")] = None,
    role: Annotated[str, typer.Option(help="portal or admin (with --name).")] = "portal",
) -> None:
    """Read an API key from stdin (or a hidden prompt) and print its sha256 for KETAMINE_QA_API_KEYS."""
    import json
    import sys

    from app.security import hash_key as digest

    if sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True, confirmation_prompt=True)
    else:
        key = sys.stdin.readline()
    if not key.strip():
        typer.secho("No key given.", fg="red", err=True)
        raise typer.Exit(1)
    if role not in ("portal", "admin"):
        typer.secho("--role must be portal or admin.", fg="red", err=True)
        raise typer.Exit(2)
    sha = digest(key)
    typer.echo(json.dumps({"name": name, "sha256": sha, "role": role}) if name else sha)


@cli.command()
def report(
    top: Annotated[int, typer.Option(help="How many question groups to list.")] = 20,
    days: Annotated[int, typer.Option(help="Look back this many days.")] = 30,
    similarity: Annotated[int, typer.Option(help="rapidfuzz token_set_ratio (0-100) that groups questions.")] = 80,
) -> None:
    """For editors: the most frequent unanswered questions (redacted, grouped) and helpful rate per passage."""
    from datetime import UTC, timedelta

    from app.editors import EditorStore

    store = EditorStore.from_settings(_settings())
    store.create_tables()
    result = store.report(top=top, similarity=similarity, since=datetime.now(UTC) - timedelta(days=days))
    store.close()
    typer.secho(f"Unanswered questions, last {days} days: {result.questions} stored", bold=True)
    if not result.groups:
        typer.echo("  (none)")
    for group in result.groups:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(group.kinds.items()))
        typer.echo(f"  {group.count:>5}  {group.example}   [{kinds}]")
        for variant in group.variants[1:]:
            typer.echo(f"         ~ {variant}")
    typer.secho("\nHelpful rate per passage (least helpful first):", bold=True)
    if not result.passages:
        typer.echo("  (no feedback yet)")
    for rate in result.passages:
        label = rate.passage_id or f"({rate.kind})"
        version = f" v{rate.passage_version}" if rate.passage_version else ""
        typer.echo(f"  {rate.rate:6.0%}  {rate.helpful:>4}/{rate.votes:<4}  {label}{version}")


SAFETY_CASES = Path("tests/safety_cases.yaml")
SAFETY_HELDOUT = Path("tests")


@cli.command()
def evaluate(
    questions: Annotated[Path, typer.Option(help="Labelled question set.")] = Path("eval/questions.yaml"),
    split: Annotated[
        str, typer.Option(help="The split that gates the exit code and whose misses are shown.")
    ] = "heldout",
    show_misses: Annotated[bool, typer.Option("--misses/--no-misses", help="List every miss of that split.")] = False,
) -> None:
    """Run the labelled set through the /v1/ask code path; print figures; exit 1 below the gates."""
    from app.embedder import load_embedder
    from app.evaluation import GATES, SPLITS, below_gates, evaluate_safety, load_cases
    from app.evaluation import evaluate as run

    settings = _settings()
    embedder = load_embedder(settings.embedder, settings.model, settings.onnx_dir, settings.embed_threads)
    assistant = Assistant.load(settings, embedder)
    figures = run(assistant, load_cases(questions))
    for name in SPLITS:
        if name not in figures:
            continue
        fig = figures[name]
        typer.secho(
            f"\n== {name} split: {fig.in_scope} in scope, {fig.off_topic} off topic, {fig.uncovered} uncovered",
            bold=True,
        )
        for metric, value in fig.summary().items():
            gate = f"   (gate {GATES[metric]:g})" if metric in GATES and name == split else ""
            typer.echo(f"  {metric:<20} {value:6.1%}{gate}")
        if show_misses and name == split:  # never list the other half's misses by accident
            for miss in fig.misses:
                typer.echo(f"    miss: {miss}")
    # The safety sets: tune / held-out halves, then later held-out sets (docs/safety.md says which
    # were tuned on after their first measurement).
    safety_sets = [(SAFETY_CASES, "all")] + [
        (path, path.stem.removeprefix("safety_").replace("_", "-"))
        for path in sorted(SAFETY_HELDOUT.glob("safety_heldout_v*.yaml"), key=lambda p: int(p.stem.rpartition("v")[2]))
    ]
    for safety_cases, default_split in safety_sets:
        if not safety_cases.exists():
            continue
        results = evaluate_safety(assistant, safety_cases, default_split)
        for name, safety in sorted(results.items(), reverse=True):
            typer.secho(f"\n== safety gate, {name} split ({safety_cases})", bold=True)
            for label, figure in safety.summary().items():
                typer.echo(f"  {label:<20} {figure}")
    failures = below_gates(figures[split]) if split in figures else [f"no {split} split in {questions}"]
    if failures:
        typer.secho(f"\nBELOW GATE on {split}: " + "; ".join(failures), fg="red", err=True)
        raise typer.Exit(1)
    typer.secho(f"\nAll {split} gates met.", fg="green")


@cli.command()
def examples(
    questions: Annotated[Path, typer.Option(help="Labelled question set.")] = Path("eval/questions.yaml"),
    reviewed_by: Annotated[
        str | None, typer.Option(help="Who reviewed the list; without it the file is a draft the service ignores.")
    ] = None,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Write knowledge/question_examples.yaml from the labelled questions outside the heldout split."""
    from app.evaluation import examples_file, load_cases

    settings = _checked_settings(knowledge_dir)
    knowledge = knowledge_files.load(settings.knowledge_dir)
    target = settings.knowledge_dir / knowledge_files.EXAMPLES_FILE
    text = examples_file(
        load_cases(questions), [p.id for p in knowledge.passages], reviewed_by, settings.current_date()
    )
    target.write_text(text, encoding="utf-8")
    status = "approved" if reviewed_by else "a draft (not used until reviewed: pass --reviewed-by)"
    typer.echo(f"Wrote {target}: {status}. Run `python -m app build` to index it.")


@cli.command("crisis-words")
def crisis_words(
    labelled: Annotated[
        Path, typer.Option(help="Folder holding tests/safety_*.yaml and eval/questions.yaml (the labelled sets).")
    ] = Path("."),
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether the file is current (exit 1 if not).")
    ] = False,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Train the safety gate's crisis word model into knowledge/crisis_words.json (app/crisis_words.py)."""
    from app.crisis_words import WORDS_FILE, CrisisWords, train, training_set, write

    settings = _settings(knowledge_dir)
    # Not _checked_settings(): a stale or broken crisis_words.json is what this command replaces.
    gate = SafetyGate.load(settings.knowledge_dir / SAFETY_FILE, words=False)
    if gate.words_quantile is None:
        typer.secho("safety.yaml has no crisis.words: {quantile: …}; nothing to make.", fg="red", err=True)
        raise typer.Exit(1)
    knowledge = knowledge_files.load(settings.knowledge_dir)
    # The judges' crises that the word lists catch, read as the service reads them (its speller decides
    # which words are misspelt and mends the text), cannot be lost to the veto: they do not set it.
    attach_speller(gate, settings, knowledge, settings.current_date())
    data = training_set(
        knowledge,
        gate.exemplars,
        normalise,
        labelled,
        gate.words_quantile,
        caught=lambda text: gate.check(text).kind == "crisis",
    )
    target = settings.knowledge_dir / WORDS_FILE
    if check:
        try:
            current = CrisisWords.load(target, gate.words_quantile).data == data.fingerprint()
        except KnowledgeError:
            current = False
        if not current:
            typer.secho(f"{target} is missing or stale: run python -m app crisis-words", fg="red", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is current.")
        return
    typer.echo(f"Training on {len(data.texts)} labelled texts ({sum(data.crisis)} crisis)…")
    words, figures = train(data, lambda line: typer.echo(f"  {line}"))
    write(words, figures, target)
    typer.echo(
        f"Wrote {target}: {len(words.terms)} terms, threshold {words.threshold} (quantile {words.quantile}). "
        f"Writers left out one at a time ({figures['writers']}): {figures['crisis_above']} of {figures['crisis']} "
        f"crises and {figures['ordinary_above']} of {figures['ordinary']} ordinary messages past it. "
        f"Veto {words.veto} (the lowest crisis not learnt; {figures['unseen_below_left_out_veto']} of the "
        f"{figures['unseen_crises']} crises of the sets it never learns that the word lists miss scored below the "
        f"left-out writers' lowest; {figures['unseen_caught']} more the lists catch). "
        "Run the safety replay before shipping it (docs/safety.md)."
    )


# --- Knowledge lifecycle: import a document, review its passages, history (docs/lifecycle.md) ---

ReviewDate = Annotated[
    datetime | None, typer.Option("--on", formats=["%Y-%m-%d"], help="Date of the review, YYYY-MM-DD (default: today).")
]


@cli.command("import")
def import_document(
    document: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The vetted document: a .txt or .md file."),
    ],
    append: Annotated[
        bool,
        typer.Option(
            "--append",
            help="The document was imported before (e.g. a new edition): add drafts only for paragraphs no "
            "passage covers yet. Existing passages are never changed.",
        ),
    ] = False,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Copy a document into knowledge/sources/ unchanged; cut it into DRAFT passages (not served until approved)."""
    from app.importer import ImportRefused
    from app.importer import import_document as run_import

    settings = _settings(knowledge_dir)
    try:
        result = run_import(document, settings.knowledge_dir, settings.current_date(), append=append)
    except ImportRefused as e:
        typer.secho(f"Nothing imported: {e}", fg="red", err=True)
        raise typer.Exit(1) from e
    typer.secho(f"Source: {result.source}", fg="green")
    typer.secho(
        f"{len(result.added)} draft passage(s) written to {result.passages_file}"
        + (f" ({result.skipped} paragraph(s) already covered)" if result.skipped else ""),
        fg="green",
    )
    for draft in result.added:
        typer.echo(f"  {draft.id:<44} [{draft.section}]")
    problems = [p for p in knowledge_problems(settings) if Path(p.file) == result.passages_file]
    if problems:
        _report(problems)
    typer.echo(
        "\nNext: read each draft in that file, delete what a patient does not need, then\n"
        '  python -m app review approve <id> --reviewer "Your name"'
    )


review_cli = typer.Typer(
    help="What needs a clinician's review; approve or retire a passage by id (edits its YAML file in place).",
    no_args_is_help=True,
)
cli.add_typer(review_cli, name="review")


@review_cli.command("list")
def review_list(knowledge_dir: KnowledgeDir = None) -> None:
    """Drafts, passages past their review date (not served) and passages falling due soon."""
    from app.lifecycle import review_queue

    settings = _settings(knowledge_dir)
    knowledge, problems = knowledge_files.validate(settings.knowledge_dir)
    today = settings.current_date()
    queue = review_queue(knowledge, today, settings.review_warning_days)
    groups = [
        ("Drafts (not served until approved)", queue.drafts, "yellow", lambda p: p.source),
        ("OVERDUE (not served until reviewed again)", queue.overdue, "red", lambda p: f"due {p.review_due}"),
        (
            f"Due for review within {settings.review_warning_days} days",
            queue.due_soon,
            "yellow",
            lambda p: f"due {p.review_due}",
        ),
    ]
    for title, passages, colour, note in groups:
        typer.secho(f"{title}: {len(passages)}", fg=colour if passages else None, bold=True)
        for passage in passages:
            first_words = " ".join(passage.text.split()[:10])
            typer.echo(f"  {passage.id:<44} {note(passage)}  “{first_words} …”")
    if problems:
        typer.secho(
            f"{len(problems)} problem(s) in the knowledge files: run `python -m app validate`.", fg="red", err=True
        )


def _review(
    passage_id: str,
    status: str,
    reviewer: str,
    on: datetime | None,
    due: datetime | None,
    reason: str | None,
    knowledge_dir: Path | None,
) -> None:
    from app.lifecycle import ReviewRefused, review

    settings = _settings(knowledge_dir)
    day = on.date() if on else settings.current_date()
    try:
        passage = review(settings.knowledge_dir, passage_id, status, reviewer, day, due.date() if due else None, reason)
    except ReviewRefused as e:
        typer.secho(f"Not changed: {e}", fg="red", err=True)
        raise typer.Exit(1) from e
    typer.secho(
        f"{passage.id} {status} by {passage.reviewed_by} on {passage.reviewed_on}"
        + (f", next review due {passage.review_due}" if status == "approved" else "")
        + f" (version {passage.version}).",
        fg="green",
    )
    typer.echo("Bring it into service: python -m app build, then reload the service (POST /v1/admin/reload or SIGHUP).")


@review_cli.command()
def approve(
    passage_id: Annotated[str, typer.Argument(metavar="ID", help="The passage id (see `review list`).")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Name of the clinician who vetted the words.")],
    on: ReviewDate = None,
    due: Annotated[
        datetime | None,
        typer.Option("--due", formats=["%Y-%m-%d"], help="Next review due, YYYY-MM-DD (default: 180 days after --on)."),
    ] = None,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Approve a passage for patients: checks it is still an exact excerpt, sets the review fields."""
    _review(passage_id, "approved", reviewer, on, due, None, knowledge_dir)


@review_cli.command()
def retire(
    passage_id: Annotated[str, typer.Argument(metavar="ID", help="The passage id.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Name of the clinician retiring it.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the history log.")] = None,
    on: ReviewDate = None,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Stop serving a passage (kept in the file and the history; never reuse its id)."""
    _review(passage_id, "retired", reviewer, on, None, reason, knowledge_dir)


@cli.command()
def history(
    on: Annotated[
        datetime | None,
        typer.Option("--on", formats=["%Y-%m-%d"], help="Show the exact words in service on this date, YYYY-MM-DD."),
    ] = None,
    passage: Annotated[str | None, typer.Option("--passage", help="Only this passage id.")] = None,
    knowledge_dir: KnowledgeDir = None,
) -> None:
    """Which version of each passage was served when (knowledge/history.jsonl), or what was served on a date."""
    from app.lifecycle import history_path, read_history, served_on

    settings = _settings(knowledge_dir)
    try:
        events = read_history(settings.knowledge_dir)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(1) from e
    if passage:
        events = [e for e in events if e.get("passage") == passage]
    if on is None:
        if not events:
            typer.echo(f"No history yet in {history_path(settings.knowledge_dir)}.")
        for event in events:
            detail = event.get("by") or event.get("why") or event.get("source") or ""
            typer.echo(
                f"{event.get('on')}  {event.get('event', ''):<10} {event.get('passage', ''):<44} "
                f"{event.get('version', '')}  {detail}"
            )
        return
    periods = served_on(events, on.date())
    typer.secho(f"{len(periods)} passage version(s) in service on {on.date()}:", bold=True)
    for period in periods:
        until = f"until {period.until}" if period.until else "still served"
        typer.secho(
            f"\n{period.passage}  version {period.version}  (served from {period.since}, {until}; "
            f"{period.source}, [{period.section}])",
            bold=True,
        )
        typer.echo(period.text)
