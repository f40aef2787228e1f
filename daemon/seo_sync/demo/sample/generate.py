"""Generate the demo data set: realistic US local-service businesses, English and Spanish.

Deterministic (no clock, no randomness): running it twice writes the same bytes. One file per
table, each a JSON list of items in DynamoDB JSON, the shape `seo-sync demo` loads.

    python daemon/seo_sync/demo/sample/generate.py   # rewrite the JSON files beside this script

The JSON files are package data: the installed `seo-sync demo` reads them from the wheel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_DAY = "2026-01-{day:02d}T{hour:02d}:00:00Z"

# Each: id, name, industry, phone, web domain, services as (English, Spanish), areas as (city, state, county).
BUSINESSES: list[dict[str, Any]] = [
    {"id": "rivera-plumbing", "name": "Rivera Plumbing & Drain", "industry": "plumbing",
     "phone": "+1-512-555-0142", "domain": "riveraplumbing.example",
     "services": [("drain cleaning", "limpieza de drenajes"),
                  ("water heater repair", "reparación de calentadores de agua"),
                  ("leak detection", "detección de fugas"), ("emergency plumber", "plomero de emergencia")],
     "areas": [("Austin", "TX", "Travis County"), ("Round Rock", "TX", "Williamson County"),
               ("Pflugerville", "TX", "Travis County"), ("Cedar Park", "TX", "Williamson County")]},
    {"id": "desert-air-hvac", "name": "Desert Air Heating & Cooling", "industry": "hvac",
     "phone": "+1-602-555-0118", "domain": "desertairhvac.example",
     "services": [("ac repair", "reparación de aire acondicionado"),
                  ("furnace installation", "instalación de calefacción"),
                  ("duct cleaning", "limpieza de ductos"), ("heat pump service", "servicio de bomba de calor")],
     "areas": [("Phoenix", "AZ", "Maricopa County"), ("Mesa", "AZ", "Maricopa County"),
               ("Tempe", "AZ", "Maricopa County"), ("Chandler", "AZ", "Maricopa County"),
               ("Glendale", "AZ", "Maricopa County")]},
    {"id": "summit-roofing", "name": "Summit Roofing Co.", "industry": "roofing",
     "phone": "+1-303-555-0177", "domain": "summitroofing.example",
     "services": [("roof replacement", "reemplazo de techo"), ("hail damage repair", "reparación de daños por granizo"),
                  ("roof inspection", "inspección de techo")],
     "areas": [("Denver", "CO", "Denver County"), ("Aurora", "CO", "Arapahoe County"),
               ("Lakewood", "CO", "Jefferson County")]},
    {"id": "green-valley-landscaping", "name": "Green Valley Landscaping", "industry": "landscaping",
     "phone": "+1-916-555-0134", "domain": "greenvalleyland.example",
     "services": [("lawn care", "cuidado del césped"), ("drip irrigation", "riego por goteo"),
                  ("tree trimming", "poda de árboles"), ("landscape design", "diseño de jardines")],
     "areas": [("Sacramento", "CA", "Sacramento County"), ("Elk Grove", "CA", "Sacramento County"),
               ("Roseville", "CA", "Placer County"), ("Folsom", "CA", "Sacramento County")]},
    {"id": "brightline-electric", "name": "Brightline Electric", "industry": "electrical",
     "phone": "+1-704-555-0191", "domain": "brightlineelectric.example",
     "services": [("panel upgrade", "actualización de panel eléctrico"), ("ev charger installation",
                  "instalación de cargador para autos eléctricos"),
                  ("licensed electrician", "electricista certificado")],
     "areas": [("Charlotte", "NC", "Mecklenburg County"), ("Concord", "NC", "Cabarrus County"),
               ("Gastonia", "NC", "Gaston County")]},
    {"id": "sonrisa-family-dental", "name": "Sonrisa Family Dental", "industry": "dental",
     "phone": "+1-210-555-0163", "domain": "sonrisadental.example",
     "services": [("teeth cleaning", "limpieza dental"), ("dental implants", "implantes dentales"),
                  ("emergency dentist", "dentista de emergencia"), ("invisalign", "ortodoncia invisible")],
     "areas": [("San Antonio", "TX", "Bexar County"), ("New Braunfels", "TX", "Comal County"),
               ("Schertz", "TX", "Guadalupe County")]},
    {"id": "ace-auto-repair", "name": "Ace Auto Repair", "industry": "auto_repair",
     "phone": "+1-305-555-0125", "domain": "aceautorepair.example",
     "services": [("brake repair", "reparación de frenos"), ("oil change", "cambio de aceite"),
                  ("transmission repair", "reparación de transmisión")],
     "areas": [("Miami", "FL", "Miami-Dade County"), ("Hialeah", "FL", "Miami-Dade County"),
               ("Doral", "FL", "Miami-Dade County"), ("Kendall", "FL", "Miami-Dade County")]},
    {"id": "shieldguard-pest", "name": "ShieldGuard Pest Control", "industry": "pest_control",
     "phone": "+1-713-555-0109", "domain": "shieldguardpest.example",
     "services": [("termite treatment", "tratamiento de termitas"), ("bed bug removal", "eliminación de chinches"),
                  ("mosquito control", "control de mosquitos")],
     "areas": [("Houston", "TX", "Harris County"), ("Pasadena", "TX", "Harris County"),
               ("Sugar Land", "TX", "Fort Bend County"), ("Katy", "TX", "Harris County")]},
    {"id": "sparkle-home-cleaning", "name": "Sparkle Home Cleaning", "industry": "cleaning",
     "phone": "+1-773-555-0150", "domain": "sparklehome.example",
     "services": [("house cleaning", "limpieza de casas"), ("deep cleaning", "limpieza profunda"),
                  ("move out cleaning", "limpieza de mudanza")],
     "areas": [("Chicago", "IL", "Cook County"), ("Evanston", "IL", "Cook County"),
               ("Oak Park", "IL", "Cook County")]},
    {"id": "keystone-locksmith", "name": "Keystone Locksmith", "industry": "locksmith",
     "phone": "+1-215-555-0187", "domain": "keystonelocks.example",
     "services": [("car lockout", "apertura de autos"), ("rekey locks", "cambio de combinación de cerraduras"),
                  ("24 hour locksmith", "cerrajero 24 horas")],
     "areas": [("Philadelphia", "PA", "Philadelphia County"), ("Camden", "NJ", "Camden County"),
               ("Cherry Hill", "NJ", "Camden County")]},
    {"id": "lone-star-movers", "name": "Lone Star Movers", "industry": "moving",
     "phone": "+1-214-555-0146", "domain": "lonestarmovers.example",
     "services": [("local movers", "mudanzas locales"), ("long distance moving", "mudanzas de larga distancia"),
                  ("packing services", "servicio de empaque")],
     "areas": [("Dallas", "TX", "Dallas County"), ("Irving", "TX", "Dallas County"),
               ("Plano", "TX", "Collin County"), ("Garland", "TX", "Dallas County")]},
    {"id": "pacific-garage-doors", "name": "Pacific Garage Doors", "industry": "garage_doors",
     "phone": "+1-619-555-0172", "domain": "pacificgarage.example",
     "services": [("garage door repair", "reparación de puertas de garaje"), ("spring replacement",
                  "cambio de resortes de garaje"), ("opener installation", "instalación de abridor de garaje")],
     "areas": [("San Diego", "CA", "San Diego County"), ("Chula Vista", "CA", "San Diego County"),
               ("Escondido", "CA", "San Diego County")]},
]

PAGE_TYPES = {
    "service": ("Write a {word_count}-word page for {business_name} about {service} in {city}, {state}.",
                ["business_name", "service", "city", "state"], ["phone", "years_in_business"], 900),
    "location": ("Write a {word_count}-word page introducing {business_name} to customers in {city}.",
                 ["business_name", "city"], ["county", "landmarks"], 700),
    "faq": ("Answer the ten most common questions customers of {business_name} ask about {service}.",
            ["business_name", "service"], ["language"], 600),
}


def slugify(text: str) -> str:
    """A URL slug of ASCII letters, digits and dashes."""
    table = str.maketrans("áéíóúñü", "aeiounu")
    out = "".join(c if c.isalnum() else "-" for c in text.lower().translate(table))
    return "-".join(p for p in out.split("-") if p)


def s(v: str) -> dict[str, str]:
    """DynamoDB JSON string."""
    return {"S": v}


def n(v: int | str) -> dict[str, str]:
    """DynamoDB JSON number (kept as its exact text)."""
    return {"N": str(v)}


def plain(v: Any) -> dict[str, Any]:
    """Plain JSON-ish Python (str, int, bool, list, dict) in DynamoDB JSON."""
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, int):
        return n(v)
    if isinstance(v, str):
        return s(v)
    if isinstance(v, list):
        return {"L": [plain(x) for x in v]}
    if isinstance(v, dict):
        return {"M": {k: plain(x) for k, x in v.items()}}
    if v is None:
        return {"NULL": True}
    raise TypeError(type(v))


def stamp(i: int, hour: int = 9) -> str:
    """A deterministic timestamp: day i of January 2026."""
    return BASE_DAY.format(day=1 + i % 28, hour=hour)


def build() -> dict[str, list[dict[str, Any]]]:
    """Every table's items, in DynamoDB JSON."""
    tables: dict[str, list[dict[str, Any]]] = {
        "businesses": [], "questionnaires": [], "keywords": [], "service_areas": [], "prompt_templates": []}
    for i, b in enumerate(BUSINESSES):
        bid, created, updated = b["id"], stamp(i, 9), stamp(i + 3, 15)
        tables["businesses"].append({
            "business_id": s(bid), "name": s(b["name"]), "industry": s(b["industry"]), "phone": s(b["phone"]),
            "email": s(f"office@{b['domain']}"), "website": s(f"https://www.{b['domain']}"),
            "created_at": s(created), "updated_at": s(updated), "_version": n(1 + i % 4), "_deleted": {"BOOL": False},
        })
        services_en = [en for en, _ in b["services"]]
        tables["questionnaires"].append({
            "business_id": s(bid), "created_at": s(created), "updated_at": s(updated), "_version": n(1 + i % 3),
            "completeness_score": n(60 + (i * 7) % 40),
            "data": plain({
                "business": {"legal_name": b["name"] + " LLC", "years_in_business": 3 + i * 2,
                             "licensed": True, "insured": True, "languages": ["en", "es"]},
                "services": [{"name": en, "name_es": es, "emergency": "emergency" in en or "24" in en}
                             for en, es in b["services"]],
                "hours": {"weekdays": "08:00-18:00", "saturday": "09:00-14:00" if i % 2 else None,
                          "sunday": None},
                "target_customers": ["homeowners", "property managers"] if i % 3 else ["homeowners"],
                "unique_selling_points": [f"Same-day {services_en[0]}", "Upfront pricing", "Bilingual team"],
                "competitors": [],
                "brand": {"tone": "friendly" if i % 2 else "professional", "colors": {"primary": "#1f6f8b"}},
            }),
        })
        for j, (en, es) in enumerate(b["services"]):
            for text, lang, intent in ((en, "en", "commercial"), (f"{en} near me", "en", "local"),
                                       (es, "es", "commercial"), (f"{es} cerca de mí", "es", "local")):
                slug = slugify(text)
                tables["keywords"].append({
                    "business_id": s(bid), "keyword_id": s(f"{slug}#{lang}"), "slug": s(slug),
                    "keyword": s(text), "language": s(lang), "search_intent": s(intent),
                    "created_at": s(stamp(i + j, 10)),
                })
        for p, (city, state, county) in enumerate(b["areas"]):
            slug = slugify(f"{city}-{state}")
            tables["service_areas"].append({
                "business_id": s(bid), "area_id": s(slug), "slug": s(slug), "city": s(city), "state": s(state),
                "country": s("US"), "county": s(county), "priority": n(p + 1),
                "created_at": s(created), "updated_at": s(stamp(i + p, 11)),
            })
        for page_type, (template, required, optional, words) in PAGE_TYPES.items():
            versions = (1, 2) if page_type == "service" else (1,)
            for version in versions:
                tables["prompt_templates"].append({
                    "business_id": s(bid), "template_id": s(f"{page_type}#{version}"), "page_type": s(page_type),
                    "version": n(version),
                    "template": s(template if version == 1 else template + " Use a friendly, local voice."),
                    "required_variables": plain(required), "optional_variables": plain(optional),
                    "word_count_target": n(words + 100 * (version - 1)),
                    "is_active": {"BOOL": version == max(versions)},
                    "created_at": s(stamp(i + version, 12)),
                })
    return tables


def main(out_dir: Path = HERE) -> None:
    """Write one JSON file per table into `out_dir`."""
    for name, items in build().items():
        text = json.dumps(items, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        (out_dir / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
