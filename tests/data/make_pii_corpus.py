"""Writes tests/data/pii_corpus.jsonl: labeled strings for the detector's precision and recall.

Positives of every kind in the variants people and models write them (separators, glued
letters, Unicode look-alikes, surrounding prose), and look-alike negatives (order ids,
dates, versions, tracking numbers, amounts, digests). Each line: {"text", "kinds"}. Run it
again after changing it; the file is committed so the test reads fixed data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARDS = [
    "4111111111111111",  # Visa test
    "5555555555554444",  # Mastercard test
    "378282246310005",  # Amex test
    "6011111111111117",  # Discover test
    "30569309025904",  # Diners test
    "4012888888881881",
    "5105105105105100",
    "371449635398431",
]
SEPARATORS = [" ", "-", ".", "  ", "\t", "\n", "/", "\u2009", "\u00a0", "\u202f", "_", "\u200b"]


def grouped(number: str, separator: str) -> str:
    layout = (4, 6, 5) if len(number) == 15 else (4, 6, 4) if len(number) == 14 else (4,) * 4
    parts, position = [], 0
    for size in layout:
        parts.append(number[position : position + size])
        position += size
    return separator.join(parts)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def rows() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(text: str, *kinds: str) -> None:
        out.append({"text": text, "kinds": sorted(set(kinds))})

    # -- cards: every separator, glued, fullwidth, in prose ------------------------------------
    for number in CARDS:
        add(number, "card_number")
        add(f"card {number} exp 12/27", "card_number")
        add(f"x{number}", "card_number")
        for separator in SEPARATORS:
            add(f"please charge {grouped(number, separator)} again", "card_number")
        add(f"card ending {fullwidth(grouped(number, ' '))}", "card_number")
        add(
            f"the number is {number[:4]}-{number[4:8]}-{number[8:12]}-{number[12:]}.", "card_number"
        )
    # -- SSNs ------------------------------------------------------------------------------------
    for ssn in ("123-45-6789", "219-09-9990", "536-90-4399", "078-05-1121", "665-12-3456"):
        add(f"SSN {ssn}", "ssn")
        add(f"my social security number is {ssn.replace('-', ' ')}", "ssn")
        add(f"ssn: {ssn.replace('-', '')}", "ssn")
        add(f"Social Security No. {ssn}.", "ssn")
    # -- IBANs -----------------------------------------------------------------------------------
    for iban in (
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "ES91 2100 0418 4502 0005 1332",
    ):
        add(f"wire it to {iban} please", "iban")
        add(f"IBAN: {iban.replace(' ', '')}", "iban")
    # -- phones ----------------------------------------------------------------------------------
    for phone in (
        "555-123-4567",
        "555.123.4567",
        "(555) 123-4567",
        "+1 415-555-0100",
        "+1 (415) 555 0100",
        "415 555 0100",
        "+44 20 7946 0958",
        "+33 1 42 68 53 00",
        "+49 30 901820",
        "+81 3-1234-5678",
        "+61 2 9374 4000",
        "4155550100",
    ):
        add(f"call me at {phone}", "phone")
        add(f"phone: {phone}.", "phone")
    add("call +1 415-555-0100 or 415.555.0199", "phone")
    # -- emails ----------------------------------------------------------------------------------
    for email in (
        "pat@example.com",
        "pat.example+orders@customers.example.com",
        "PAT@EXAMPLE.ORG",
        "a_b-c@sub.domain.co.uk",
        "pat\uff20example.com",
        "p\u200bat@example.com",
    ):
        add(f"write to {email}", "email")
        add(f"<{email}>", "email")
    # -- secrets ---------------------------------------------------------------------------------
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IlBhdCJ9."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    for secret in (
        "sk-live_abcdefghijklmnop1234",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "sk_live_51H8abcdefghijklmnopqrstu",
        "rk_live_51H8abcdefghijklmnopqrstu",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012",
        "glpat-abcdefghij1234567890",
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
        "xoxp-123456789012-abcdefghij",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        jwt,
        f"Bearer {jwt}",
        "Authorization: Bearer abcdefghijklmnop1234",
        "Authorization: Basic cGF0OnNlY3JldHBhc3N3b3Jk",
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        "AWS_SECRET_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "postgres://admin:hunter2hunter2@db.internal:5432/app",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n",
    ):
        add(secret, "secret")
        add(f"the key is {secret} - keep it safe", "secret")
    # -- mixed -----------------------------------------------------------------------------------
    add("pat@example.com paid with 4111 1111 1111 1111", "email", "card_number")
    add("SSN 123-45-6789, phone 555-123-4567", "ssn", "phone")
    add("IBAN DE89370400440532013000, email pat@example.com", "iban", "email")
    add("docs at https://example.com/help or pat@example.com", "email")
    add("mailto:pat@example.com", "email")
    # -- negatives: look-alikes --------------------------------------------------------------
    for text in (
        "order ORD-5001, refund $35.00 on 2026-11-24",
        "ticket T-1001 was resolved at 2026-12-03T10:15:00Z",
        "version 1.2.3, build 10.0.19041.1",
        "tracking 1Z999AA10123456784",
        "USPS tracking 9400 1118 9922 3197 4284 90",
        "FedEx 123456789012",
        "amount $1,234,567.89",
        "the total is 4,111.11 USD",
        "not a card 4111 1111 1111 1112",
        "invoice INV-20261203-0001",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "ip 192.168.100.200",
        "dates 05/12/2025 and 12.03.2026",
        "room 1234, floor 56",
        "zip code 94107-1234",
        "isbn 978-3-16-148410-0",
        "SSN format is XXX-XX-XXXX",
        "000-12-3456 is not a valid SSN",
        "666-45-6789 is never issued",
        "900-12-3456 is an ITIN range",
        "123-00-4567 has a zero group",
        "DE00 3704 0044 0532 0130 00 fails its checksum",
        "GB00WEST12345698765432",
        "email me at pat at example dot com",
        "the @ sign",
        "user@localhost",
        "sk-short",
        "AKIA is a prefix",
        "ghp_short",
        "Bearer token goes here",
        "eyJ is how JSON starts in base64",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----",
        "https://example.com/path?q=1",
        "http://user@example.com/",
        "timestamp 1701600000123",
        "the year 2026 and 1999",
        "count 12 34 56",
        "phone extension 1234",
        "order 5001 and 5002",
        "PO box 12345",
        "coordinates 37.7749, -122.4194",
        "the number 0.5 and 3.14159",
        "build 20261203.1",
        "model gpt-4o-2024-08-06",
        "card ending 1111",
        "last four 4242",
        "123456",
        "SKU 400-12-0041-A",
        "call the front desk",
        "account ACC-1 balance 120",
        "refund of 35.00 for ORD-5001 approved by lead",
    ):
        add(text)
    return out


def main() -> None:
    path = Path(__file__).with_name("pii_corpus.jsonl")
    lines = [json.dumps(row, ensure_ascii=False) for row in rows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} strings -> {path}")


if __name__ == "__main__":
    main()
