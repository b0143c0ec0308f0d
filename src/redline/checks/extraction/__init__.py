"""Extraction checks (FM05 model stealing, FM08 exfiltration by a malicious provider) and
the helpers only they use."""
