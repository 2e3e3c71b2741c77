"""Fixed vocabularies and pure helpers: integer arithmetic only, so results do not depend on the
platform's libm."""
from __future__ import annotations

import datetime as dt
import hashlib
import random

DAY_MS = 86_400_000
TIMESTAMP_OFFSETS_MIN = (330, -240, 60, -420, 540, -300, 120, -210, 600)
JUNK_EMAILS = ("test@test.com", "none@none.com")
JUNK_PHONE = "0000000000"


def chunk_seed(seed: int, index: int) -> int:
    """A stable integer seed for chunk `index` (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(f"c360-generate:{seed}:{index}".encode()).digest()[:8], "big")


_DATE_CACHE: dict[int, str] = {}


def epoch_day_to_date(day: int) -> str:
    text = _DATE_CACHE.get(day)
    if text is None:
        text = _DATE_CACHE[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return text


def format_timestamp(ts_ms: int, offset_minutes: int) -> str:
    """ISO-8601 of the instant `ts_ms` (epoch milliseconds, UTC) written in the given UTC offset."""
    local = ts_ms + offset_minutes * 60_000
    day, ms = divmod(local, DAY_MS)
    seconds, millis = divmod(ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if offset_minutes == 0:
        zone = "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        oh, om = divmod(abs(offset_minutes), 60)
        zone = f"{sign}{oh:02d}:{om:02d}"
    return f"{epoch_day_to_date(day)}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}{zone}"


def count_about(rng: random.Random, mean: float) -> int:
    """A count with the given mean (uniform on 0..2*mean), using only random() and multiplication."""
    return int(rng.random() * (2 * mean + 1))


def uuid_from(bits: int) -> str:
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def street_address(rng: random.Random) -> str:
    return f"{rng.randint(1, 9999)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"


def product_catalog(seed: int) -> list[tuple[str, str, str, str, str, int, int]]:
    """(product_id, brand, supplier, category, classification, case cents, bottle cents), from the seed only."""
    rng = random.Random(chunk_seed(seed, -2))
    products = []
    for n in range(1, 301):
        brand = rng.choice(BRANDS)
        bottle = rng.randrange(300, 6000)
        products.append((f"SKU{n:05d}", brand, SUPPLIERS[BRANDS.index(brand) % len(SUPPLIERS)],
                         rng.choice(CATEGORIES), rng.choice(CLASSIFICATIONS), bottle * 12 - rng.randrange(0, 1200), bottle))
    return products


# Vocabularies (names, places, products, codes) the generated values are drawn from.
ACTIVITY_LEVELS = (0.15, 0.4, 0.8, 1.2, 2.0, 3.5)
ACTIVITY_WEIGHTS = (15, 20, 25, 20, 13, 7)
FIRST_NAMES = ("ann", "ben", "carla", "dev", "elena", "farid", "grace", "hiro", "ines", "jamal", "kate", "li",
               "maria", "noah", "olga", "pedro", "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "xenia",
               "yusuf", "zoe", "aisha", "bruno", "chloe", "diego")
LAST_NAMES = ("smith", "garcia", "chen", "patel", "kim", "nguyen", "johnson", "lopez", "muller", "rossi",
              "okafor", "silva", "haddad", "novak", "tanaka", "brown", "singh", "cohen", "ivanova", "dubois",
              "walker", "murphy", "yilmaz", "khan", "santos")
EMAIL_DOMAINS = ("example.com", "mail.example", "inbox.example", "corp.example")
AREA_CODES = ("212", "213", "305", "312", "404", "415", "512", "602", "617", "702", "713", "206", "303", "503")
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Harbor Blvd", "Sunset Ave",
           "Lake Shore Dr", "Mill Rd")
CITIES = ("Springfield", "Riverside", "Fairview", "Franklin", "Greenville", "Madison", "Clinton", "Georgetown")
SITES = (("101", "CA", "Los Angeles", "900", "West Division"), ("102", "CA", "San Diego", "921", "West Division"),
         ("201", "TX", "Harris", "770", "South Division"), ("202", "TX", "Dallas", "752", "South Division"),
         ("301", "NY", "Kings", "112", "East Division"), ("302", "NY", "New York", "100", "East Division"),
         ("401", "FL", "Miami-Dade", "331", "South Division"), ("501", "IL", "Cook", "606", "Central Division"),
         ("601", "WA", "King", "981", "West Division"), ("701", "GA", "Fulton", "303", "South Division"),
         ("801", "AZ", "Maricopa", "850", "West Division"), ("901", "CO", "Denver", "802", "Central Division"))
ON_PREM_CHANNELS = (("BAR", "Bar / Tavern"), ("RST", "Restaurant"), ("HTL", "Hotel"))
OFF_PREM_CHANNELS = (("GRO", "Grocery"), ("CNV", "Convenience"), ("LIQ", "Liquor Store"))
BRANDS = ("Northwind", "Blue Ridge", "Copper Kettle", "Old Harbor", "Sierra Vista", "Red Barn", "Golden Gate",
          "Iron Horse", "Silver Lake", "Stone Mill", "Wild Fern", "Twin Peaks")
SUPPLIERS = ("Atlas Beverage Co", "Summit Distillers", "Valley Vineyards", "Harbor Brewing Group")
CATEGORIES = ("Beer", "Wine", "Spirits", "Cider", "Non-Alcoholic")
CLASSIFICATIONS = ("Core", "Premium", "Craft", "Seasonal", "Import")
REJECT_CODES = ("R01-CREDIT", "R02-OUT-OF-STOCK", "R03-LICENSE", "R04-ADDRESS", "R05-CUSTOMER")
DELIVERY_STATUSES = ("not shipped", "returned", "cancelled")
PAGES = ("Home", "Catalog", "Product", "Cart", "Checkout", "Account", "Promotions", "Order History")
PLANS = ("basic", "plus", "premium")
ACCOUNT_SUFFIXES = ("Holdings", "Hospitality", "Markets", "Group")
GROUP_EVENTS = ("Invoice Paid", "Statement Viewed", "Plan Changed", "Delivery Scheduled")
