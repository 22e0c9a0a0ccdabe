"""Deterministic generator for Hearth's sample database: a B2B office-supplies distributor.

`generate(seed)` returns {table: [row tuple, ...]} in `ddl.TABLES` column order. Everything comes
from one `random.Random(seed)` drawn in a fixed order, so the same seed gives the same rows on
every machine and Python version (random.Random's algorithms are stable across versions for the
methods used here). Dates are ISO strings ('YYYY-MM-DD', timestamps 'YYYY-MM-DD HH:MM:SS') so
every engine stores and compares them the same way; money is Decimal rounded to cents.

The data carries the shape real sales data has, so questions have interesting answers: a few
large accounts place most orders, volume grows year on year with a back-to-school peak, some
customers never order and some products never sell, recent orders are still pending/in transit,
and late invoices are still unpaid at the cutoff date.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import unicodedata
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from random import Random

from server.sql.sample import words
from server.sql.sample.ddl import TABLES, create_statements
from server.sql.sample.location import sample_sqlite_path
from server.sql.sample.orders import generate_orders

DEFAULT_SEED = 20250101
# Bump whenever the generator, word lists or schema change what gets built: ensure_sample_sqlite
# then rebuilds files written by an older Hearth (the committed pairs must be regenerated too).
DATA_VERSION = 1
START = date(2023, 1, 1)  # first order date
CUTOFF = date(2025, 12, 31)  # "today" for the data: nothing happens after this day

SampleData = dict[str, list[tuple]]

CENT = Decimal("0.01")


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def ascii_slug(text: str, sep: str = "") -> str:
    """'Müller & Söhne' -> 'mullersohne' (email local parts and domains)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    parts = ("".join(ch for ch in part if ch.isalnum()) for part in plain.split())
    return sep.join(part for part in parts if part)


TLD = {"United States": "com", "Canada": "ca", "United Kingdom": "co.uk", "Ireland": "ie",
       "Germany": "de", "Austria": "at", "Switzerland": "ch", "Netherlands": "nl", "Belgium": "be",
       "France": "fr", "Sweden": "se", "Denmark": "dk", "Norway": "no", "Finland": "fi",
       "China": "cn", "Taiwan": "tw", "Japan": "jp"}

# Category sku prefix -> supplier name stems that plausibly stock it.
CATEGORY_SUPPLIERS = {
    "PAP": ("Atlas Paper", "Celtic Paper Mills", "Nordic Pulp", "Great Lakes Stationery", "Papeterie du Rhône"),
    "WRI": ("Great Lakes Stationery", "Osaka Writing Co", "Papeterie du Rhône", "Meridian Office Wholesale"),
    "DSK": ("Meridian Office Wholesale", "Thames Office Products", "Hanse Bürobedarf", "Dutch Office Trade", "Atelier Bureau"),
    "FIL": ("Thames Office Products", "Hanse Bürobedarf", "Meridian Office Wholesale", "Dutch Office Trade"),
    "INK": ("Pacific Print Supplies", "Rheinland Druck", "Taipei Peripheral"),
    "FUR": ("Liberty Furniture Works", "Alpen Möbel", "Atelier Bureau"),
    "TEC": ("Summit Tech Distribution", "Shenzhen Bright Electronics", "Taipei Peripheral"),
    "BRK": ("Maple Leaf Supply", "Meridian Office Wholesale", "Dutch Office Trade"),
    "CLN": ("Northern Janitorial", "Suomi Clean", "Maple Leaf Supply"),
    "MAI": ("Pennine Packaging", "Flanders Carton", "Atlas Paper"),
    "PRS": ("Thames Office Products", "Hanse Bürobedarf", "Summit Tech Distribution"),
    "SAF": ("Helvetia Safety", "Fjord Supply", "Northern Janitorial"),
}


def _day(rng: Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


class _People:
    """Draws unique person names per locale (employees and contacts share one namespace)."""

    def __init__(self, rng: Random):
        self.rng = rng
        self.used: set[str] = set()

    def name(self, locale: str) -> tuple[str, str]:
        for _ in range(1000):
            first = self.rng.choice(words.FIRST_NAMES[locale])
            last = self.rng.choice(words.LAST_NAMES[locale])
            if f"{first} {last}" not in self.used:
                self.used.add(f"{first} {last}")
                return first, last
        raise RuntimeError(f"name list for {locale!r} exhausted")


def _regions() -> tuple[list[tuple], dict[int, list[tuple[str, str]]]]:
    rows, cities = [], {}
    for region_id, (name, countries) in enumerate(words.REGIONS, start=1):
        rows.append((region_id, name))
        cities[region_id] = [(city, country) for country, names in countries for city in names]
    return rows, cities


def _employees(rng: Random, people: _People, regions: list[tuple]) -> tuple[list[tuple], dict[int, list[int]]]:
    """VP -> one regional manager per region -> 3-4 reps each; ids put managers before reports."""
    rows: list[tuple] = []
    reps: dict[int, list[int]] = {}

    def add(title: str, locale: str, region_id: int | None, manager_id: int | None, hired: date) -> int:
        first, last = people.name(locale)
        email = f"{ascii_slug(first)}.{ascii_slug(last)}@hearthsupply.example"
        rows.append((len(rows) + 1, first, last, email, title, hired.isoformat(), region_id, manager_id))
        return len(rows)

    vp = add(words.JOB_TITLES[0], "en", None, None, date(2014, 3, 3))
    managers = {rid: add(words.JOB_TITLES[1], words.REGION_LOCALE[name], rid, vp,
                         _day(rng, date(2015, 1, 1), date(2020, 12, 31)))
                for rid, name in regions}
    for rid, name in regions:
        count = 4 if name.startswith("US") else 3
        reps[rid] = [
            add(rng.choice(words.JOB_TITLES[2:]), words.REGION_LOCALE[name], rid, managers[rid],
                _day(rng, date(2016, 1, 1), date(2024, 6, 30)))
            for _ in range(count)
        ]
        reps[rid].append(managers[rid])  # managers keep a few key accounts themselves
    return rows, reps


def _customers(rng: Random, people: _People, regions: list[tuple], cities: dict[int, list],
               reps: dict[int, list[int]], count: int) -> list[tuple]:
    region_ids = [rid for rid, _ in regions]
    # Bigger markets get more customers: US regions weigh 1.6, Canada/UK/DACH 1.0, the rest 0.7.
    region_weights = [1.6 if name.startswith("US") else 1.0 if name in ("Canada", "UK & Ireland", "DACH") else 0.7
                      for _, name in regions]
    segments = [s for s, _ in words.SEGMENTS]
    shares = [w for _, w in words.SEGMENTS]
    credit = {"Enterprise": (50_000, 250_000, 5_000), "Mid-Market": (10_000, 60_000, 1_000),
              "Small Business": (1_000, 15_000, 500), "Public Sector": (20_000, 100_000, 5_000),
              "Education": (5_000, 40_000, 1_000)}
    rows, names = [], set()
    for customer_id in range(1, count + 1):
        rid = rng.choices(region_ids, region_weights)[0]
        # Lists start with the biggest city, which gets the most customers.
        options = cities[rid]
        city, country = rng.choices(options, [1 / (i + 1) ** 0.7 for i in range(len(options))])[0]
        locale = words.REGION_LOCALE[regions[rid - 1][1]]
        segment = rng.choices(segments, shares)[0]
        industry = rng.choice(words.SEGMENT_INDUSTRIES[segment])
        for attempt in range(1000):
            noun = rng.choice(words.INDUSTRY_NOUNS[industry])
            pattern = rng.random()
            # Public bodies are named after their city (a place word once the city's names run
            # out); schools sometimes after a place word.
            if (industry == "Government" and attempt < 10) or (industry == "Education" and pattern < 0.6):
                stem = f"{city} {noun}"
            elif industry in ("Government", "Education"):
                stem = f"{rng.choice(words.COMPANY_PREFIXES)} {noun}"
            elif pattern < 0.55:
                stem = f"{rng.choice(words.COMPANY_PREFIXES)} {noun}"
            else:
                stem = f"{rng.choice(words.LAST_NAMES[locale])} {noun}"
            suffix = "" if industry in ("Government", "Education") else rng.choice(words.COMPANY_SUFFIX[country])
            name = f"{stem} {suffix}".strip()
            if name not in names:
                names.add(name)
                break
        first, last = people.name(locale)
        email = f"{ascii_slug(first)}.{ascii_slug(last)}@{ascii_slug(stem)}.{TLD[country]}"
        pool = reps[rid] if segment == "Enterprise" else reps[rid][:-1]
        low, high, step = credit[segment]
        limit = Decimal(rng.randrange(low, high + step, step))
        # Most accounts predate the order history; a third signed up during it.
        signed = (_day(rng, date(2018, 1, 1), date(2022, 12, 31)) if rng.random() < 0.68
                  else _day(rng, date(2023, 1, 1), date(2025, 11, 30)))
        rows.append((customer_id, name, segment, industry, f"{first} {last}", email, city, country,
                     rid, rng.choice(pool), limit, signed.isoformat(), None))
    return rows


def _suppliers(rng: Random) -> list[tuple]:
    rows = []
    for supplier_id, (stem, country, city) in enumerate(words.SUPPLIERS, start=1):
        suffixes = words.COMPANY_SUFFIX.get(country) or words.SUPPLIER_SUFFIX_EXTRA[country]
        name = f"{stem} {rng.choice(suffixes)}".strip()
        far = country in ("China", "Taiwan", "Japan")
        lead = rng.randint(20, 45) if far else rng.randint(2, 14)
        rating = rng.choices((2, 3, 4, 5), (1, 3, 5, 3))[0]
        rows.append((supplier_id, name, country, city, f"orders@{ascii_slug(stem)}.{TLD[country]}", lead, rating))
    return rows


def _price(rng: Random, low: float, high: float) -> Decimal:
    """Shelf prices end in .99 (.49 under ten) like a real catalogue."""
    raw = rng.uniform(low, high)
    if raw < 10:
        return money(max(1, round(raw * 2) / 2) - 0.01)
    if raw < 100:
        return money(round(raw) - 0.01)
    return money(round(raw / 5) * 5 - 0.01)


def _catalog(rng: Random, count: int) -> tuple[list[tuple], list[tuple]]:
    categories, bases = [], []
    for category_id, (name, prefix, description, items) in enumerate(words.CATALOG, start=1):
        categories.append((category_id, name, description))
        bases += [(category_id, prefix, item) for item in items]
    # Every base item gets one brand, then extra brands go to random items (at most four each).
    brands_of: list[list[str]] = [[rng.choice(words.BRANDS)] for _ in bases]
    while sum(map(len, brands_of)) < count:
        chosen = rng.randrange(len(bases))
        if len(brands_of[chosen]) < 4:
            brand = rng.choice(words.BRANDS)
            if brand not in brands_of[chosen]:
                brands_of[chosen].append(brand)
    supplier_id = {stem: i for i, (stem, _, _) in enumerate(words.SUPPLIERS, start=1)}
    products, serial = [], {}
    for (category_id, prefix, (item, low, high)), brands in zip(bases, brands_of):
        for brand in brands:
            serial[prefix] = serial.get(prefix, 0) + 1
            price = _price(rng, low * (1.15 if brand in words.BRANDS[:4] else 1.0), high)
            cost = money(float(price) * rng.uniform(0.45, 0.75))
            stock = 0 if rng.random() < 0.04 else rng.randint(5, 150 if price > 100 else 900)
            products.append((len(products) + 1, f"{prefix}-{1000 + serial[prefix]}", f"{brand} {item}",
                             category_id, supplier_id[rng.choice(CATEGORY_SUPPLIERS[prefix])],
                             price, cost, stock, rng.randrange(10, 105, 5), int(rng.random() < 0.07)))
    return categories, products


def generate(seed: int = DEFAULT_SEED, *, customers: int = 500, products: int = 200,
             orders: int = 5000) -> SampleData:
    """All rows of the sample database, {table: [tuple in ddl column order]}."""
    rng = Random(seed)
    people = _People(rng)
    regions, cities = _regions()
    employees, reps = _employees(rng, people, regions)
    customer_rows = _customers(rng, people, regions, cities, reps, customers)
    suppliers = _suppliers(rng)
    categories, product_rows = _catalog(rng, products)
    order_rows, items, payments, shipments, last_order = generate_orders(
        rng, customer_rows, product_rows, reps, orders, START, CUTOFF)
    # Account status follows the order history: no order in the last year -> inactive.
    for i, row in enumerate(customer_rows):
        last = last_order.get(row[0])
        status = ("on_hold" if rng.random() < 0.02 else
                  "active" if last and last >= "2025-01-01" else "inactive")
        customer_rows[i] = row[:-1] + (status,)
    return {"regions": regions, "employees": employees, "customers": customer_rows,
            "suppliers": suppliers, "categories": categories, "products": product_rows,
            "orders": order_rows, "order_items": items, "payments": payments, "shipments": shipments}


def _sqlite_value(value):
    # sqlite3 has no Decimal adapter; cents are exact enough as binary floats for a sample DB.
    return float(value) if isinstance(value, Decimal) else value


def fill_sqlite(conn: sqlite3.Connection, data: SampleData) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    for statement in create_statements("sqlite"):
        conn.execute(statement)
    for table in TABLES:
        marks = ", ".join("?" * len(table.columns))
        conn.executemany(f"INSERT INTO {table.name} VALUES ({marks})",
                         ([_sqlite_value(v) for v in row] for row in data[table.name]))
    conn.commit()


def build_sqlite(path: str | os.PathLike, seed: int = DEFAULT_SEED, data: SampleData | None = None) -> Path:
    """Write the sample database to `path` atomically (temp file in the same dir, then replace)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Only the default data is stamped current: anything else must never satisfy ensure_sample_sqlite.
    version = DATA_VERSION if seed == DEFAULT_SEED and data is None else 0
    data = data if data is not None else generate(seed)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; sample data is no secret, other users may read it
        conn = sqlite3.connect(tmp)
        try:
            fill_sqlite(conn, data)
            conn.execute(f"PRAGMA user_version = {version}")
        finally:
            conn.close()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _file_version(path: Path) -> int | None:
    """PRAGMA user_version read straight from the 100-byte SQLite header (offset 60, big-endian)."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None
    return int.from_bytes(header[60:64], "big")


def ensure_sample_sqlite(path: str | os.PathLike | None = None) -> Path:
    """The default sample database file, built (atomically) if it is missing or out of date.

    `path` defaults to location.sample_sqlite_path(). The server calls this at startup, so a hit
    costs one open() and a 100-byte read, no SQLite connection; a miss generates the data
    (about a second). Concurrent callers each build a temp file and os.replace() it: identical
    content, and readers never see a half-written file.
    """
    if path is None:
        path = sample_sqlite_path()
    target = Path(path)
    if _file_version(target) == DATA_VERSION:
        return target
    return build_sqlite(target, DEFAULT_SEED)


def connect_memory(seed: int = DEFAULT_SEED, data: SampleData | None = None) -> sqlite3.Connection:
    """An in-memory SQLite copy of the sample database (question generation, quick checks)."""
    conn = sqlite3.connect(":memory:")
    fill_sqlite(conn, data if data is not None else generate(seed))
    return conn
