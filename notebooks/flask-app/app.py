"""The tutorial's Flask app: run it in a container and publish its port.

    nbc run -d -p 5000:5000 -v $PWD/notebooks/flask-app:/app flask:latest python3 /app/app.py
    curl http://127.0.0.1:5000/
"""
import os
import socket

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return (f"<!doctype html><title>nbcontainer</title>"
            f"<h1>Hello from Flask in a container!</h1><p>hostname: {socket.gethostname()}</p>")


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
