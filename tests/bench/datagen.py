"""Deterministic business profiles of realistic shape for the benchmark, as DynamoDB items.

Each business has one `businesses` item and one questionnaire (a nested `data` map of a few KB),
hundreds of keywords in English and Spanish, a few dozen service areas, and versioned prompt
templates (several page types, several versions each, the newest active). Everything about
business number `i` comes from its own seeded RNG, so any business can be regenerated alone: the
synthetic source serves 100,000 items without holding them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from seo_sync.codec import Item

TABLE_ORDER = ("businesses", "questionnaires", "keywords", "service_areas", "prompt_templates")

INDUSTRIES = {
    "plumbing": ["drain cleaning", "water heater repair", "leak detection", "pipe replacement", "sewer line repair",
                 "garbage disposal installation", "toilet repair", "repiping", "gas line repair", "sump pump"],
    "roofing": ["roof repair", "roof replacement", "shingle roofing", "metal roofing", "flat roof repair",
                "gutter installation", "storm damage repair", "roof inspection", "skylight installation", "tile roof"],
    "hvac": ["ac repair", "furnace installation", "heat pump service", "duct cleaning", "thermostat installation",
             "ac tune up", "mini split installation", "emergency hvac", "boiler repair", "air quality testing"],
    "dental": ["teeth whitening", "dental implants", "invisalign", "root canal", "emergency dentist",
               "pediatric dentist", "dental crowns", "teeth cleaning", "veneers", "wisdom teeth removal"],
    "landscaping": ["lawn care", "tree trimming", "landscape design", "sprinkler repair", "sod installation",
                    "hardscaping", "mulching", "yard cleanup", "drought tolerant landscaping", "outdoor lighting"],
}
SPANISH = {
    "repair": "reparación", "installation": "instalación", "replacement": "reemplazo", "cleaning": "limpieza",
    "emergency": "emergencia", "service": "servicio", "inspection": "inspección", "design": "diseño",
    "near me": "cerca de mí", "best": "mejor", "affordable": "económico", "licensed": "con licencia",
    "24 hour": "24 horas", "same day": "el mismo día", "cost of": "costo de",
}
MODIFIERS = ["", "near me", "best", "affordable", "licensed", "24 hour", "same day", "cost of", "emergency",
             "top rated", "local", "cheap", "residential", "commercial"]
INTENTS = ["transactional", "commercial", "informational", "navigational"]
STATES = {
    "TX": ["Austin", "Round Rock", "Cedar Park", "Georgetown", "Pflugerville", "Leander", "San Marcos", "Kyle",
           "Buda", "Lakeway", "Hutto", "Manor", "Dripping Springs", "Bastrop", "Taylor", "Liberty Hill"],
    "FL": ["Tampa", "Clearwater", "St. Petersburg", "Brandon", "Largo", "Riverview", "Wesley Chapel", "Lutz",
           "Dunedin", "Palm Harbor", "Seminole", "Plant City", "Valrico", "Apollo Beach", "Oldsmar", "Tarpon Springs"],
    "AZ": ["Phoenix", "Mesa", "Chandler", "Gilbert", "Scottsdale", "Tempe", "Peoria", "Surprise", "Goodyear",
           "Avondale", "Buckeye", "Queen Creek", "Fountain Hills", "Cave Creek", "Litchfield Park", "Tolleson"],
}
COUNTIES = {"TX": ["Travis", "Williamson", "Hays", "Bastrop"], "FL": ["Hillsborough", "Pinellas", "Pasco"],
            "AZ": ["Maricopa", "Pinal"]}
PAGE_TYPES = ["service", "location", "service-location", "blog", "faq", "landing"]
WORDS = ("quality trusted local expert professional reliable fast friendly licensed insured family owned "
         "customer satisfaction guarantee free estimate upfront pricing experienced technicians community "
         "years neighborhood schedule appointment warranty certified modern equipment safety clean").split()


def S(v: str) -> dict[str, str]:
    """A DynamoDB string value."""
    return {"S": v}


def N(v: int) -> dict[str, str]:
    """A DynamoDB number value."""
    return {"N": str(v)}


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower().replace("í", "i").replace("ó", "o")
                  .replace("é", "e").replace("á", "a").replace("ñ", "n"))
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _to_spanish(phrase: str) -> str:
    out = phrase
    for en, es in SPANISH.items():
        out = out.replace(en, es)
    return out


def _ts(rng: random.Random, year: int = 2025) -> str:
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:" \
           f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def business_id(index: int) -> str:
    """The id of business number `index` (stable, file-name safe)."""
    return f"biz-{index:06d}"


def business_items(index: int, seed: int = 7) -> dict[str, list[Item]]:
    """Every item of business number `index`, per table, in key order within each table."""
    rng = random.Random(seed * 1_000_003 + index)
    bid = business_id(index)
    industry = rng.choice(sorted(INDUSTRIES))
    services = INDUSTRIES[industry]
    state = rng.choice(sorted(STATES))
    created = _ts(rng, 2024)
    updated = _ts(rng, 2025)
    brand = rng.choice(["Apex", "Summit", "Blue Sky", "Lone Star", "Sun Valley", "Metro"])
    name = f"{brand} {industry.title()} {index}"
    out: dict[str, list[Item]] = {t: [] for t in TABLE_ORDER}
    out["businesses"].append({
        "business_id": S(bid), "name": S(name), "industry": S(industry),
        "phone": S(f"+1-512-555-{index % 10000:04d}"), "email": S(f"hello@{_slug(name)}.example"),
        "website": S(f"https://{_slug(name)}.example"), "created_at": S(created), "updated_at": S(updated),
        "_version": N(rng.randint(1, 40)), "_deleted": {"BOOL": False},
    })
    faq = [{"M": {"q": S(_sentence(rng, 8)), "a": S(_sentence(rng, 30))}} for _ in range(rng.randint(4, 8))]
    out["questionnaires"].append({
        "business_id": S(bid), "created_at": S(created), "updated_at": S(updated),
        "completeness_score": N(rng.randint(40, 100)), "_version": N(rng.randint(1, 25)),
        "data": {"M": {
            "business": {"M": {"name": S(name), "founded": N(rng.randint(1970, 2022)),
                               "employees": N(rng.randint(2, 250)), "tagline": S(_sentence(rng, 9))}},
            "services": {"L": [S(s) for s in rng.sample(services, 6)]},
            "usp": {"L": [S(_sentence(rng, 12)) for _ in range(4)]},
            "hours": {"M": {d: S("08:00-18:00") for d in ("mon", "tue", "wed", "thu", "fri")}
                      | {"sat": S("09:00-14:00"), "sun": {"NULL": True}}},
            "brand_voice": {"M": {"tone": S(rng.choice(["friendly", "expert", "warm", "direct"])),
                                  "avoid": {"L": [S(w) for w in rng.sample(WORDS, 5)]}}},
            "faq": {"L": faq},
            "languages": {"L": [S("en"), S("es")]},
        }},
    })
    cities = STATES[state]
    phrases: set[str] = set()
    target_slugs = rng.randint(80, 140)
    while len(phrases) < target_slugs:
        svc, mod, city = rng.choice(services), rng.choice(MODIFIERS), rng.choice([*cities, ""])
        phrases.add(" ".join(p for p in (mod, svc, f"in {city}" if city else "") if p))
    keywords = []
    for phrase in sorted(phrases):
        slug = _slug(phrase)
        for lang, text in (("en", phrase), ("es", _to_spanish(phrase).replace(" in ", " en "))):
            keywords.append({
                "business_id": S(bid), "keyword_id": S(f"{slug}#{lang}"), "slug": S(slug), "keyword": S(text),
                "language": S(lang), "search_intent": S(rng.choice(INTENTS)), "created_at": S(_ts(rng)),
                "_deleted": {"BOOL": False},
            })
    out["keywords"] = sorted(keywords, key=lambda it: it["keyword_id"]["S"])
    areas = []
    for city in rng.sample(cities, min(len(cities), rng.randint(8, 16))):
        for suffix in ("", "-north", "-south", "-downtown")[: rng.randint(1, 4)]:
            slug = _slug(city) + suffix
            areas.append({
                "business_id": S(bid), "area_id": S(slug), "slug": S(slug), "city": S(city), "state": S(state),
                "country": S("US"), "county": S(rng.choice(COUNTIES[state])), "priority": N(rng.randint(1, 10)),
                "created_at": S(_ts(rng)), "updated_at": S(_ts(rng)), "_deleted": {"BOOL": False},
            })
    out["service_areas"] = sorted(areas, key=lambda it: it["area_id"]["S"])
    templates = []
    for page_type in rng.sample(PAGE_TYPES, 4):
        versions = rng.randint(1, 4)
        for version in range(1, versions + 1):
            body = "\n\n".join(
                f"## {{{{{v}}}}}\n" + " ".join(_sentence(rng, 14) for _ in range(4))
                for v in ("service_name", "city", "business_name", "primary_keyword"))
            templates.append({
                "business_id": S(bid), "template_id": S(f"{page_type}#{version:03d}"), "page_type": S(page_type),
                "version": N(version), "template": S(body),
                "required_variables": {"L": [S("business_name"), S("service_name"), S("city")]},
                "optional_variables": {"L": [S("primary_keyword"), S("phone"), S("faq")]},
                "word_count_target": N(rng.choice([600, 800, 1200, 1500])), "is_active": {"BOOL": version == versions},
                "created_at": S(_ts(rng)), "_deleted": {"BOOL": False},
            })
    out["prompt_templates"] = sorted(templates, key=lambda it: it["template_id"]["S"])
    return out


@dataclass
class Dataset:
    """A generated data set: how many businesses, and the items per table."""

    businesses: int
    items: dict[str, list[Item]]

    @property
    def total(self) -> int:
        """Items over all five tables."""
        return sum(len(v) for v in self.items.values())

    def counts(self) -> dict[str, int]:
        """Items per table."""
        return {t: len(v) for t, v in self.items.items()}


def businesses_for(target_items: int, seed: int = 7) -> int:
    """How many businesses it takes to reach at least `target_items` items."""
    total, index = 0, 0
    while total < target_items:
        total += sum(len(v) for v in business_items(index, seed).values())
        index += 1
    return index


def iter_businesses(count: int, seed: int = 7) -> Iterator[dict[str, list[Item]]]:
    """The items of businesses 0..count-1, one business at a time."""
    for index in range(count):
        yield business_items(index, seed)


def make_dataset(target_items: int, seed: int = 7) -> Dataset:
    """At least `target_items` items: whole businesses until the target is reached."""
    items: dict[str, list[Item]] = {t: [] for t in TABLE_ORDER}
    count = 0
    while sum(len(v) for v in items.values()) < target_items:
        for table, its in business_items(count, seed).items():
            items[table].extend(its)
        count += 1
    return Dataset(count, items)
