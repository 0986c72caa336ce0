"""The processes phase's app (`make bench`): a FastAPI JSON endpoint, served by pyweb
with 2 worker processes against uvicorn and granian with 2 workers (pydantic-core refuses
sub-interpreters, so on more than one core FastAPI runs in processes)."""

from fastapi import FastAPI

fastapi_app = FastAPI()


@fastapi_app.get("/")
async def fastapi_root() -> dict[str, str]:
    return {"message": "Hello, World!"}
