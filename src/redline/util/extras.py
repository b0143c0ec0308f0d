"""Which extra of redline installs each optional third-party package, so that a missing one
is reported as the command that installs it. pyproject.toml's optional-dependencies say the
same; tests/core/test_core_optional_packages.py keeps the two in step."""
from __future__ import annotations

# import name -> (distribution name, extra)
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "ml"),
    "sklearn": ("scikit-learn", "ml"),
    "onnx": ("onnx", "ml"),
    "onnxruntime": ("onnxruntime", "ml"),
    "skops": ("skops", "ml"),
    "safetensors": ("safetensors", "ml"),
    "matplotlib": ("matplotlib", "ml"),
    "mlxtend": ("mlxtend", "data"),
    "statsmodels": ("statsmodels", "data"),
    "cryptography": ("cryptography", "crypto"),
    "ray": ("ray", "ray"),
    "gymnasium": ("gymnasium", "agents"),
    "fastapi": ("fastapi", "guard"),
    "uvicorn": ("uvicorn", "guard"),
    "httptools": ("httptools", "guard"),
    "httpx": ("httpx", "guard"),
    "redis": ("redis", "guard"),
    "sqlalchemy": ("sqlalchemy", "registry"),
    "alembic": ("alembic", "registry"),
    "psycopg": ("psycopg", "registry"),
    "jinja2": ("jinja2", "registry"),
    "python_multipart": ("python-multipart", "registry"),
}


def install_hint(package: str) -> str:
    """``pip install 'redline[ml]'`` for an optional package given by import or distribution name."""
    for module, (distribution, extra) in OPTIONAL_PACKAGES.items():
        if package in (module, distribution):
            return f"pip install 'redline[{extra}]'"
    raise KeyError(f"{package} is not an optional package of redline")


def missing_package_message(exc: ImportError) -> str | None:
    """A one-line message for an optional package that is not installed, else None."""
    module = (exc.name or "").split(".")[0]
    if module not in OPTIONAL_PACKAGES:
        return None
    return f"this needs the optional package {OPTIONAL_PACKAGES[module][0]}: {install_hint(module)}"
