"""Aggregate documents in the data-contract format, built from a synthetic population.

Shared by the dashboard tests and tests/bench/bench_dashboard.py. The documents are what the
streaming job writes: one per (dimension, key) with exact `count` and `ageSum`, plus the
`pipeline_health` document.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database

# Rough shares of randomuser nationalities.
NATIONALITIES = {
    "US": 14, "GB": 9, "FR": 8, "DE": 8, "AU": 6, "BR": 6, "CA": 6, "ES": 5, "NL": 5, "NO": 4, "DK": 4,
    "FI": 4, "IE": 4, "CH": 3, "NZ": 3, "TR": 3, "IN": 3, "MX": 3, "IR": 2, "RS": 2, "UA": 2,
}
AGE_OFFSET = {"IN": -6, "MX": -5, "BR": -4, "TR": -3, "IR": -3, "FI": 3, "DE": 4, "CH": 5, "NO": 3, "DK": 2}
DOMAINS = {
    "gmail.com": 30, "outlook.com": 12, "yahoo.com": 10, "hotmail.com": 9, "icloud.com": 6, "gmx.de": 4,
    "web.de": 3, "orange.fr": 3, "free.fr": 2, "protonmail.com": 2, "t-online.de": 2, "uol.com.br": 2,
    "laposte.net": 1, "yandex.ru": 1, "live.co.uk": 1,
}
# Personal domains: one or two users each, so k-anonymity must hide them.
RARE_DOMAINS = ("smith-family.net", "dupont.fr", "mueller-home.de")
PERSONAL_DOMAIN_SHARE = 0.005
BANDS = ((17, "0-17"), (24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54"), (64, "55-64"))


def band(age: int) -> str:
    return next((name for top, name in BANDS if age <= top), "65+")


def population(profiles: int, seed: int = 7, personal_domains: float = PERSONAL_DOMAIN_SHARE) -> list[tuple[str, str, int, str]]:
    """(nat, gender, age, email domain) for `profiles` adults, deterministic for a seed.

    A share `personal_domains` of users have a domain of their own family (shared by few users),
    so the number of email-domain groups grows with the population, as it does in real data.
    """
    rng = random.Random(seed)
    nats = rng.choices(list(NATIONALITIES), weights=list(NATIONALITIES.values()), k=profiles)
    domains = rng.choices(list(DOMAINS), weights=list(DOMAINS.values()), k=profiles)
    genders = rng.choices(["female", "male", "unknown"], weights=[49, 49, 2], k=profiles)
    people = []
    for nat, gender, domain in zip(nats, genders, domains):
        age = int(min(95, max(18, rng.gauss(44 + AGE_OFFSET.get(nat, 0), 15))))
        if rng.random() < personal_domains:
            domain = f"home{rng.randrange(profiles // 100 + 1)}.example.net"
        people.append((nat, gender, age, domain))
    for i, domain in enumerate(RARE_DOMAINS[: max(0, min(3, profiles // 100))]):
        people[i] = (*people[i][:3], domain)
    return people


def aggregate_documents(people: list[tuple[str, str, int, str]], batch: int = 41, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(timezone.utc)
    count: Counter[tuple[str, str]] = Counter()
    age_sum: Counter[tuple[str, str]] = Counter()
    for nat, gender, age, domain in people:
        for key in (("total", "all"), ("nationality", nat), ("gender", gender), ("ageBand", band(age)), ("emailDomain", domain)):
            count[key] += 1
            age_sum[key] += age
    return [
        {"_id": f"{dim}:{key}", "dimension": dim, "key": key, "count": n, "ageSum": age_sum[(dim, key)],
         "lastBatch": batch, "updatedAt": now}
        for (dim, key), n in sorted(count.items())
    ]


def health_document(processed: int, *, rejected: int = 0, filtered: int = 0, batch: int = 41,
                    now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    return {"_id": "stream", "lastBatchId": batch, "lastBatchAt": now - timedelta(seconds=1), "processed": processed,
            "rejected": rejected, "filtered": filtered, "batchRecords": 500, "batchSeconds": 1.2,
            "recordsPerSecond": 412.5, "lagRecords": 0, "freshnessSeconds": 2.1}  # caught up: never stalled


def group(dimension: str, key: str, count: int, age_sum: int, batch: int = 1) -> dict[str, Any]:
    return {"_id": f"{dimension}:{key}", "dimension": dimension, "key": key, "count": count, "ageSum": age_sum,
            "lastBatch": batch, "updatedAt": datetime.now(timezone.utc)}


def write(db: Database[dict[str, Any]], aggregates: list[dict[str, Any]], health: dict[str, Any] | None) -> None:
    """Replace the store's content, as the pipeline's upserts would leave it."""
    if aggregates:
        db["aggregates"].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in aggregates])
    if health is not None:
        db["pipeline_health"].replace_one({"_id": "stream"}, health, upsert=True)
