"""Realistic demo stock: Chinese and global makes, their models, powertrains and prices.

Deterministic (a seeded random generator), so ``forecourt seed --vehicles N`` run twice makes the same
cars and the second run changes nothing; a larger N adds cars.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from .rules import VIN_VALUES, with_check_digit

# make, WMI, weight (share of the stock), [(model, body, [(powertrain, new price yuan, battery kWh, range km)])]
CATALOG: list[tuple[str, str, int, list[tuple[str, str, list[tuple[str, int, float | None, int | None]]]]]] = [
    ("BYD", "LGX", 22, [
        ("Qin PLUS", "sedan", [("phev", 99_800, 18.3, 120), ("bev", 129_800, 57.6, 510)]),
        ("Han", "sedan", [("bev", 209_800, 85.4, 715), ("phev", 189_800, 37.6, 242)]),
        ("Seal", "sedan", [("bev", 189_800, 82.5, 650)]),
        ("Song PLUS", "suv", [("phev", 149_800, 18.3, 110), ("bev", 169_800, 71.8, 605)]),
        ("Yuan PLUS", "suv", [("bev", 135_800, 60.5, 510)]),
        ("Tang", "suv", [("phev", 219_800, 45.8, 215), ("bev", 259_800, 108.8, 730)]),
        ("Dolphin", "hatchback", [("bev", 99_800, 44.9, 420)]),
        ("Seagull", "hatchback", [("bev", 69_800, 30.1, 305)]),
    ]),
    ("Geely", "L6T", 8, [
        ("Xingyue L", "suv", [("petrol", 145_700, None, None), ("phev", 179_700, 41.2, 200)]),
        ("Emgrand", "sedan", [("petrol", 72_900, None, None)]),
        ("Galaxy L7", "suv", [("phev", 138_700, 18.7, 115)]),
        ("Geometry E", "suv", [("bev", 86_800, 39.4, 401)]),
    ]),
    ("Tesla", "LRW", 7, [
        ("Model 3", "sedan", [("bev", 231_900, 60.0, 606)]),
        ("Model Y", "suv", [("bev", 249_900, 60.0, 554)]),
    ]),
    ("NIO", "LJ1", 3, [
        ("ET5", "sedan", [("bev", 298_000, 75.0, 560)]),
        ("ES6", "suv", [("bev", 338_000, 75.0, 500)]),
    ]),
    ("XPeng", "L1N", 3, [
        ("P7", "sedan", [("bev", 209_900, 86.2, 702)]),
        ("G6", "suv", [("bev", 176_900, 66.0, 580)]),
    ]),
    ("Li Auto", "LW4", 4, [
        ("L7", "suv", [("phev", 301_800, 42.8, 210)]),
        ("L9", "suv", [("phev", 409_800, 52.3, 215)]),
        ("MEGA", "mpv", [("bev", 529_800, 102.7, 710)]),
    ]),
    ("Aito", "LM8", 2, [
        ("M7", "suv", [("phev", 249_800, 40.0, 240)]),
        ("M9", "suv", [("phev", 469_800, 52.0, 275)]),
    ]),
    ("Zeekr", "L6T", 2, [
        ("001", "wagon", [("bev", 269_000, 100.0, 656)]),
        ("007", "sedan", [("bev", 209_900, 75.0, 688)]),
    ]),
    ("Changan", "LS5", 4, [
        ("CS75 PLUS", "suv", [("petrol", 119_900, None, None)]),
        ("UNI-V", "sedan", [("petrol", 113_900, None, None)]),
        ("Deepal SL03", "sedan", [("bev", 168_900, 58.1, 515), ("phev", 144_900, 28.4, 200)]),
    ]),
    ("Great Wall", "LGW", 4, [
        ("Haval H6", "suv", [("petrol", 98_900, None, None), ("hev", 132_800, 1.7, None)]),
        ("Tank 300", "suv", [("petrol", 199_800, None, None)]),
        ("Poer", "pickup", [("diesel", 129_800, None, None)]),
    ]),
    ("Chery", "LVV", 3, [
        ("Tiggo 8", "suv", [("petrol", 109_900, None, None)]),
        ("Arrizo 8", "sedan", [("petrol", 99_900, None, None)]),
    ]),
    ("Toyota", "LVG", 7, [
        ("Camry", "sedan", [("petrol", 179_800, None, None), ("hev", 205_800, 1.6, None)]),
        ("Corolla", "sedan", [("petrol", 109_800, None, None), ("hev", 135_800, 1.3, None)]),
        ("RAV4", "suv", [("petrol", 175_800, None, None), ("hev", 209_800, 1.6, None),
                         ("phev", 265_800, 18.1, 95)]),
        ("Mirai", "sedan", [("fcev", 749_000, 1.2, 650)]),
    ]),
    ("Honda", "LHG", 5, [
        ("Accord", "sedan", [("petrol", 169_800, None, None), ("hev", 199_800, 1.1, None)]),
        ("CR-V", "suv", [("petrol", 181_900, None, None), ("hev", 215_900, 1.1, None)]),
        ("Odyssey", "mpv", [("hev", 259_800, 1.1, None)]),
    ]),
    ("Volkswagen", "LSV", 7, [
        ("Lavida", "sedan", [("petrol", 99_900, None, None)]),
        ("Passat", "sedan", [("petrol", 189_900, None, None)]),
        ("Tiguan L", "suv", [("petrol", 215_800, None, None)]),
        ("ID.4 CROZZ", "suv", [("bev", 199_900, 84.8, 600)]),
    ]),
    ("BMW", "LBV", 4, [
        ("3 Series", "sedan", [("petrol", 299_900, None, None)]),
        ("5 Series", "sedan", [("petrol", 439_900, None, None), ("phev", 479_900, 19.4, 90)]),
        ("X3", "suv", [("petrol", 399_900, None, None)]),
        ("iX3", "suv", [("bev", 409_900, 80.0, 550)]),
        ("4 Series", "coupe", [("petrol", 379_900, None, None)]),
    ]),
    ("Mercedes-Benz", "LE4", 4, [
        ("C-Class", "sedan", [("petrol", 329_100, None, None)]),
        ("E-Class", "sedan", [("petrol", 448_800, None, None)]),
        ("GLC", "suv", [("petrol", 428_800, None, None), ("phev", 478_800, 31.2, 100)]),
        ("EQE", "sedan", [("bev", 478_000, 96.1, 752)]),
    ]),
    ("Audi", "LFV", 3, [
        ("A4L", "sedan", [("petrol", 321_800, None, None)]),
        ("A6L", "sedan", [("petrol", 427_900, None, None)]),
        ("Q5L", "suv", [("petrol", 398_800, None, None)]),
    ]),
    ("Buick", "LSG", 2, [
        ("GL8", "mpv", [("petrol", 232_900, None, None), ("hev", 299_900, 1.4, None)]),
    ]),
    ("Nissan", "LGB", 3, [
        ("Sylphy", "sedan", [("petrol", 99_900, None, None), ("hev", 129_900, 2.1, None)]),
        ("X-Trail", "suv", [("petrol", 181_800, None, None)]),
    ]),
    ("Ford", "LVS", 2, [
        ("Ranger", "pickup", [("diesel", 169_800, None, None)]),
        ("Transit", "van", [("diesel", 159_800, None, None)]),
        ("Mustang", "convertible", [("petrol", 459_800, None, None)]),
    ]),
    ("Porsche", "WP0", 1, [
        ("Taycan", "sedan", [("bev", 888_000, 93.4, 560)]),
        ("Cayenne", "suv", [("petrol", 928_000, None, None), ("phev", 1_088_000, 25.9, 70)]),
        ("911", "coupe", [("petrol", 1_458_000, None, None)]),
    ]),
]
TRIMS = ["Standard", "Comfort", "Premium", "Sport", "Flagship"]
COLOURS = ["White", "Black", "Silver", "Grey", "Blue", "Red", "Green", "白色", "黑色", "珠光白"]
FEATURES = ["Adaptive cruise control", "360° camera", "Heated seats", "Panoramic roof", "Head-up display",
            "Wireless charging", "Lane keeping assist", "Keyless entry", "Ventilated seats", "Tow bar",
            "Parking assist", "Premium audio"]
# The model-year character (position 10) repeats every 30 years; 2010 is A.
YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
SERIAL_ALPHABET = [ch for ch in VIN_VALUES if ch.isalnum()]


def year_code(year: int) -> str:
    return YEAR_CODES[(year - 2010) % 30]


def make_vin(wmi: str, rng: random.Random, year: int, serial: int) -> str:
    """A VIN that passes the check digit, unique per (wmi, serial)."""
    vds = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(5))
    plant = "ABCDEFGHJK"[serial // 1_000_000 % 10]
    return with_check_digit(f"{wmi}{vds}0{year_code(year)}{plant}{serial % 1_000_000:06d}")


def demo_vehicles(count: int, branch_ids: list[int], today: date | None = None, seed: int = 3779) -> Iterator[dict]:
    """``count`` vehicle rows (dicts of the import's fields) spread over ``branch_ids``."""
    rng = random.Random(seed)
    today = today or date.today()
    models = [(make, wmi, weight / len(lineup), model, body, variants)
              for make, wmi, weight, lineup in CATALOG for model, body, variants in lineup]
    weights = [m[2] for m in models]
    for serial in range(count):
        make, wmi, _, model, body, variants = rng.choices(models, weights)[0]
        powertrain, new_price, battery, range_km = rng.choice(variants)
        condition = rng.choices(["new", "used", "demo"], [60, 32, 8])[0]
        if condition == "new":
            year, mileage, factor = today.year - rng.choice([0, 0, 0, 1]), rng.randint(0, 50), 1.0
        elif condition == "demo":
            year, mileage = today.year - rng.choice([0, 1]), rng.randint(800, 9_000)
            factor = 0.88
        else:
            age = rng.randint(1, 9)
            year, mileage = today.year - age, rng.randint(6_000, 24_000) * age
            factor = max(0.25, 0.82 ** age)
        trim_index = rng.randrange(len(TRIMS))
        price = int(new_price * factor * (1 + 0.06 * trim_index) * rng.uniform(0.95, 1.05)) // 100 * 100
        status = rng.choices(["in_stock", "in_transit", "reserved", "sold", "demo"], [62, 10, 5, 20, 3])[0]
        arrival = today - timedelta(days=rng.randint(0, 150)) if status != "in_transit" else None
        yield {
            "vin": make_vin(wmi, rng, year, serial),
            "make": make, "model": model, "trim": TRIMS[trim_index], "model_year": year, "body": body,
            "powertrain": powertrain,
            "battery_kwh": Decimal(str(battery)) if battery is not None else None,
            "range_km": range_km,
            "colour": rng.choice(COLOURS), "mileage_km": mileage, "condition": condition,
            "list_price": max(price, 10_000),
            "cost": Decimal(int(price * rng.uniform(0.82, 0.93))),
            "status": status,
            "eta": today + timedelta(days=rng.randint(3, 45)) if status == "in_transit" else None,
            "arrival_date": arrival,
            "branch_id": rng.choice(branch_ids),
            "lot_location": f"{rng.choice('ABCDEF')}-{rng.randint(1, 60):02d}",
            "features": rng.sample(FEATURES, rng.randint(2, 6)),
            "internal_notes": "",
        }
