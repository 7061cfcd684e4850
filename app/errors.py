"""Domain errors. They become HTTP problems only at the edge (app/main.py)."""


class KnowledgeError(Exception):
    """A knowledge file is broken: names the file, the entry and the field."""

    def __init__(self, file: str, entry_id: str | None, field: str | None, problem: str) -> None:
        self.file, self.entry_id, self.field, self.problem = file, entry_id, field, problem
        where = file + (f", entry '{entry_id}'" if entry_id else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")


class InvalidKnowledge(Exception):
    """One or more knowledge files failed validation; every problem is listed at once."""

    def __init__(self, problems: list[KnowledgeError]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the knowledge files:\n{lines}")


class StaleIndex(Exception):
    """The embeddings on disk do not match the knowledge base or the configured model."""


class NotReady(Exception):
    """The model and index are still loading."""
