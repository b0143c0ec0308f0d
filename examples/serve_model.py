"""Serve a model on redline's HTTP protocol, to try the guard in front of it.

    python examples/serve_model.py zoo:digits_mlp_regularized --port 8000

answers ``POST /predict`` with ``{"inputs": [...]}`` -> ``{"probabilities": [...]}``. Any
TARGET redline can load works (``zoo:NAME``, ``onnx:PATH``, ``sklearn:PATH``, ``torch:PATH``).
It listens on 127.0.0.1 only and has no authentication of its own: put the guard in front.
"""
from __future__ import annotations

import argparse

import numpy as np
from fastapi import FastAPI, HTTPException, Request  # at module level: FastAPI reads the annotations by name

from redline.targets import load_target


def create_app(spec: str) -> FastAPI:
    target = load_target(spec)
    app = FastAPI(title=f"model {spec}")

    @app.post("/predict")
    async def predict(request: Request):
        try:
            body = await request.json()
            x = np.asarray(body["inputs"], dtype=np.float32).reshape((-1, *target.input_spec.shape))
        except Exception:  # any malformed request is the client's error; say no more
            raise HTTPException(status_code=422, detail="expected {\"inputs\": [...]} rows of the model's shape") from None
        return {"probabilities": np.asarray(target.predict(x)).tolist()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="zoo:NAME, onnx:PATH, sklearn:PATH or torch:PATH")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(create_app(args.target), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
