"""docker-style random container names: ``adjective_surname`` (our own short lists)."""
from __future__ import annotations

import random
from typing import Callable

ADJECTIVES = (
    "agile", "bold", "brave", "bright", "calm", "clever", "cool", "eager", "elated", "fervent",
    "gentle", "happy", "jolly", "keen", "kind", "lucid", "merry", "modest", "nifty", "noble",
    "patient", "quiet", "quirky", "serene", "sharp", "steady", "sweet", "tender", "vivid", "witty",
    "zealous", "upbeat",
)
SURNAMES = (
    "babbage", "bartik", "bell", "curie", "darwin", "dijkstra", "einstein", "euler", "faraday",
    "fermat", "franklin", "galileo", "gauss", "hamilton", "hopper", "hypatia", "johnson", "kepler",
    "knuth", "lamarr", "lovelace", "maxwell", "meitner", "newton", "noether", "pascal", "ritchie",
    "shannon", "thompson", "turing", "wozniak", "yalow",
)


def random_name(taken: Callable[[str], bool] = lambda n: False, rng: random.Random | None = None) -> str:
    """A fresh ``adjective_surname``; adds a digit suffix after a few collisions, like docker."""
    rng = rng or random.SystemRandom()
    for attempt in range(64):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt >= 8:
            name += str(rng.randint(0, 99))
        if name == "boring_wozniak":  # docker's joke, kept
            continue
        if not taken(name):
            return name
    raise RuntimeError("could not find a free container name")
