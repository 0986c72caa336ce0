"""A FastAPI chat: a page, and a websocket room where each message goes to everyone."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

app = FastAPI()
members: dict[str, WebSocket] = {}


@app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse("<script>new WebSocket('ws://' + location.host + '/chat/me')</script>")


@app.websocket("/chat/{name}")
async def chat(websocket: WebSocket, name: str) -> None:
    await websocket.accept()
    members[name] = websocket
    try:
        while True:
            data = await websocket.receive_json()
            for member in list(members.values()):
                await member.send_json({"from": name, "text": data["text"]})
    except WebSocketDisconnect:
        members.pop(name, None)
