"""A FastAPI app for e2e/asgi_test.go (the test virtualenv has FastAPI).

  GET  /                      {"framework": "fastapi"}
  POST /items/{item_id}?q=    an Item (JSON body, validated by pydantic) and
                              the path and query parameters, echoed back;
                              an invalid body gets FastAPI's 422
  GET  /users/{user_id}       a sync (def) endpoint, which FastAPI runs in a
                              thread: {"user_id", "in_event_loop"}
  WS   /ws/{room}             accepts; answers each JSON message with
                              {"room", "echo"}; the message {"close": CODE}
                              makes it close with CODE
"""

import asyncio
import threading
from typing import List, Optional

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

app = FastAPI(title="whisk e2e")


class Item(BaseModel):
    name: str
    price: float = Field(gt=0)
    tags: List[str] = []


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@app.get("/")
async def root():
    return {"framework": "fastapi"}


@app.post("/items/{item_id}")
async def create_item(item_id: int, item: Item, q: Optional[str] = None):
    return {"item_id": item_id, "name": item.name, "price": item.price, "tags": item.tags, "q": q}


@app.get("/users/{user_id}")
def read_user(user_id: int):
    return {"user_id": user_id, "in_event_loop": _in_event_loop(),
            "main_thread": threading.current_thread() is threading.main_thread()}


@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            if isinstance(data, dict) and "close" in data:
                await websocket.close(code=int(data["close"]))
                return
            await websocket.send_json({"room": room, "echo": data})
    except WebSocketDisconnect:
        pass
