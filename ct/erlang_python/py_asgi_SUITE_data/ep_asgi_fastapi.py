"""A FastAPI app for py_asgi_SUITE."""
import asyncio
import hashlib
from typing import List, Optional

from fastapi import BackgroundTasks, FastAPI, File, Form, Header, HTTPException, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

BACKGROUND = []


def background_log():
    return list(BACKGROUND)


app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Optional[str] = None, limit: int = 10):
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items", status_code=201)
async def create_item(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags}


@app.post("/form")
async def form(name: str = Form(...), city: str = Form(...)):
    return {"name": name, "city": city}


@app.post("/upload")
async def upload(file: UploadFile = File(...), field: str = Form(...)):
    content = await file.read()
    return {"filename": file.filename, "content_type": file.content_type, "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(), "field": field}


@app.get("/headers")
async def headers(response: Response, x_test: Optional[str] = Header(None)):
    response.headers["X-Echo"] = x_test or ""
    return {"x_test": x_test}


@app.get("/cookies")
async def cookies(response: Response):
    response.set_cookie("first", "1")
    response.set_cookie("second", "2")
    return {"ok": True}


@app.get("/stream")
async def stream():
    async def gen():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"part{i}\n".encode()
    return StreamingResponse(gen(), media_type="text/plain")


def record_bg(tag: str):
    BACKGROUND.append(tag)


@app.get("/background")
async def background(tag: str, tasks: BackgroundTasks):
    tasks.add_task(record_bg, tag)
    return {"queued": tag}


@app.get("/missing")
async def missing():
    raise HTTPException(status_code=404, detail="Item not found")


@app.get("/boom")
async def boom():
    raise KeyError("fastapi boom")
