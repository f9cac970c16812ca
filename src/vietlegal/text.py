"""Vietnamese text at the project's boundaries: NFC, trimmed, diacritics kept as letters."""
from __future__ import annotations

import unicodedata


def nfc(text: str) -> str:
    """NFC-normalise and trim. Editors on macOS often write NFD Vietnamese ("ê" + combining acute),
    which compares unequal to the precomposed form in Python, ROUGE and BLEU alike."""
    return unicodedata.normalize("NFC", text).strip()


def nfc_messages(messages: list[dict]) -> list[dict]:
    return [{**m, "content": nfc(m["content"])} for m in messages]
