"""The cell key of a set of people: the sum of their person keys modulo 2**32, from a bitmap of
person numbers (launcher/reports/people.py) without a query per person.

A person key is 32 bits, so the sum over a set S is the sum over the bits j of 2**j times the
number of people in S whose key has bit j set, |S & P_j|. The 32 *key planes* P_j (bitmaps of
person numbers) are built in each process from person_number and grown as numbers are given;
an intersection count of Roaring bitmaps costs per container of 65,536 numbers, not per person.

Which way a set is summed depends on its containers (each holds one block of 65,536 numbers:
an array of up to 4,096 of them, a bitset, or runs). 32 intersections are 32 passes over an
array or runs, but only 32 popcounts of 1,024 words over a bitset; so a set of up to
:data:`SMALL` people is summed person by person, one of bitsets is intersected with the
planes, and any other of more than :data:`DIRECT` people by its complement among all
numbers -- bitsets where the set is sparse (a department, an app x department cell), a short
array where it is dense runs: 2 to 6 times fewer steps on those. All three give the same sum.

A sum depends on the set and the numbering alone (a person's key never changes and a number
is never given twice), so each process keeps the sums of the frozen sets it summed
(:data:`SUMS`, an LRU of :data:`SUMS_BYTES`) under the set itself and the database's
numbering epoch: the same people asked again -- the page and its CSV export, a reload, the
last 30 days within a day -- cost one hash and one comparison of the set, not its sum again.
The figures are the same either way; only the time differs.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass, field

import sqlalchemy as sa
from pyroaring import AbstractBitMap, BitMap, FrozenBitMap

from launcher.reports.cellkey import MOD
from launcher.reports.lru import SizedLRU

SMALL = 64  # up to this many people: person by person
DIRECT = 256  # up to this many (or bitsets): the planes; more, in arrays or runs: the complement
SUMS_BYTES = 32 * 2**20  # the sums kept per process, counted by the sets' sizes


@dataclass(frozen=True)
class Keys:
    """One database's person keys of the numbers below ``known``: the 32 planes, each
    number's key (0 for a number nobody has: purged, or reserved and never given), all the
    numbers and the sum of all the keys. ``db``: (url, numbering epoch)."""

    db: tuple[str, str] = ("", "")
    known: int = 0
    planes: tuple[BitMap, ...] = tuple(BitMap() for _ in range(32))
    by_number: array[int] = field(default_factory=lambda: array("I"))
    everyone: FrozenBitMap = field(default_factory=FrozenBitMap)
    total: int = 0

    def __call__(self, people: AbstractBitMap) -> int:
        """The sum of the person keys of ``people`` modulo 2**32."""
        n = len(people)
        if n == 0:
            return 0
        if people.max() >= self.known:  # cannot be (Counter reads the keys again): the planes
            return self._planes(people)
        if n <= SMALL:
            return sum(map(self.by_number.__getitem__, people)) % MOD
        if n > DIRECT:
            stats = people.get_statistics()
            if stats["n_bitset_containers"] < stats["n_containers"]:
                return (self.total - self._planes(self.everyone - people)) % MOD
        return self._planes(people)

    def _planes(self, people: AbstractBitMap) -> int:
        return sum(people.intersection_cardinality(p) << j for j, p in enumerate(self.planes)) % MOD


def grown(had: Keys, limit: int, rows: list[tuple[int, int]]) -> Keys:
    """``had`` with the (number, person key) ``rows`` of the numbers from ``had.known`` up to
    ``limit``; the new one shares nothing that a reader of ``had`` holds."""
    planes = tuple(BitMap(had.planes[j]) for j in range(32))
    for j in range(32):
        planes[j].update(n for n, k in rows if (k >> j) & 1)
    by_number = array("I", had.by_number)
    by_number.frombytes(bytes(by_number.itemsize * (limit - had.known)))  # a 0 per new number
    for n, k in rows:
        by_number[n] = k
    everyone = BitMap(range(limit))
    everyone.run_optimize()  # one run per block
    total = (had.total + sum(k for _, k in rows)) % MOD
    return Keys(had.db, limit, planes, by_number, FrozenBitMap(everyone), total)


@dataclass
class _Database:
    keys: Keys = field(default_factory=Keys)  # keys.db[1]: the numbering epoch they are of
    lock: threading.Lock = field(default_factory=threading.Lock)


_DATABASES: dict[str, _Database] = {}
_DATABASES_LOCK = threading.Lock()


def load(conn: sa.Connection, counter: tuple[int, str] | None = None) -> Keys:
    """This database's person keys, grown by the numbers given since the last call. Numbers
    are never given twice and a person's key never changes, so the keys only grow; a new
    ``epoch`` (a database numbered afresh) starts them again. ``counter``: person_counter's
    (next number, epoch) as read with this connection's stamps; None reads it here."""
    url = conn.engine.url.render_as_string(hide_password=True)
    with _DATABASES_LOCK:
        cache = _DATABASES.setdefault(url, _Database())
    if counter is None:
        row = conn.execute(sa.text("SELECT next_number, epoch FROM person_counter")).first()
        if row is None:
            return Keys()
        counter = int(row[0]), str(row[1])
    limit, epoch = counter
    with cache.lock:
        if epoch != cache.keys.db[1]:
            cache.keys = Keys((url, epoch))
        had = cache.keys
        if limit > had.known:
            rows = conn.execute(
                sa.text(
                    "SELECT number, person_key FROM person_number "
                    "WHERE number >= :lo AND number < :hi"
                ),
                {"lo": had.known, "hi": limit},
            ).all()
            cache.keys = grown(had, limit, [(int(n), int(k)) for n, k in rows])
        return cache.keys


# Key sums by (database and numbering epoch, frozen set), counted by the sets' sizes
SUMS: SizedLRU[tuple[tuple[str, str], FrozenBitMap], int] = SizedLRU(
    SUMS_BYTES, lambda key, _sum: 200 + key[1].__sizeof__()
)


def key_sum(keys: Keys, people: AbstractBitMap) -> int:
    """``keys(people)``, kept per process for a frozen set (a set that can change is summed
    every time)."""
    if not isinstance(people, FrozenBitMap) or not keys.db[1]:
        return keys(people)
    found = SUMS.get((keys.db, people))
    if found is None:
        found = keys(people)
        SUMS.put((keys.db, people), found)
    return found
