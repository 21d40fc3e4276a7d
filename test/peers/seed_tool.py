# Checks the seed-compat test runs with Debian's /usr/bin/python3 and the seed's own libraries.
#   seed_tool.py check    exits 0 when the seed app's dependencies import
#   seed_tool.py decode   reads a JWT on stdin, decodes it as the seed does (python-jose, HS256,
#                         SEED_SECRET_KEY), prints the claims as JSON; exits 1 if jose rejects it
import json
import os
import sys


def check():
    import fastapi, jose, multipart, passlib, sqlalchemy, uvicorn  # noqa: F401


def decode():
    from jose import JWTError, jwt

    token = sys.stdin.read().strip()
    try:
        claims = jwt.decode(token, os.environ["SEED_SECRET_KEY"], algorithms=["HS256"])
    except JWTError as err:
        print(f"rejected: {err}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(claims))


if __name__ == "__main__":
    {"check": check, "decode": decode}[sys.argv[1]]()
