# The seed tutorial's main.py. The port may come from the environment, and dependencies use the
# `= Depends()` spelling for Debian's FastAPI 0.92 (see auth.py).
import os
from fastapi import FastAPI, status, Depends
import auth
import models
from database import engine, SessionLocal
from sqlalchemy.orm import Session
from typing import Annotated
from auth import get_current_user

app = FastAPI()
app.include_router(auth.router)
models.Base.metadata.create_all(bind=engine)


def get_db():
    try:
        db = SessionLocal()
        yield db
    finally:
        db.close()


db_dependancy = Annotated[Session, Depends(get_db)]
user_dependancy = Annotated[dict, Depends(get_current_user)]


@app.get('/', status_code=status.HTTP_200_OK)
async def user(user: dict = Depends(get_current_user), db: Session = Depends(get_db)):
    return {"message": f"Hello, {user['username']} with ID: {user['id']}!"}


if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("SEED_PORT", "8000")))
