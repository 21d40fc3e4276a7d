# The seed tutorial's database.py, verbatim except that DATABASE_URL may come from the
# environment so a test can point the original app at a temporary file.
import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker, declarative_base

DATABASE_URL = os.environ.get("SEED_DATABASE_URL", "sqlite:///./todosapp.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
Base = declarative_base()
