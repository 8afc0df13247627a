#!/usr/bin/env python3
"""A stateful fake of the GitHub REST endpoints a pull-request run calls, for scripts/bench.sh.

    python3 scripts/bench-github-fake.py --token TOKEN --port-file FILE

Serves on a free loopback port (written to FILE once listening), keeps pull requests in
memory, and answers like GitHub (REST v3) does:

    GET   /repos/O/R/pulls?state=open&head=O:BRANCH[&base=B]  the open pull requests of a branch
    POST  /repos/O/R/pulls                     create; 422 "A pull request already exists" for a branch with one open
    GET   /repos/O/R/pulls/N                   one pull request
    PATCH /repos/O/R/pulls/N                   edit title, body, state
    POST  /repos/O/R/issues/N/labels           add labels by name
    POST  /repos/O/R/issues/N/comments         comment
    POST  /_reset                              (the benchmark's own) forget every pull request
    GET   /_state                              (the benchmark's own) {"calls": GitHub calls since the reset, "pulls": [...]}

Every GitHub call must carry `Authorization: Bearer TOKEN` (else 401 "Bad credentials") and a
`User-Agent` (else 403, as GitHub does); bodies must be JSON objects with the fields GitHub
requires (else 422). Keep-alive (HTTP/1.1), no request logging: the fake should cost the
measured run as little as a real forge's network would not.
"""

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {"next": 1, "pulls": {}, "calls": 0}

PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")
PULL = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)$")
ISSUE_PART = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/(labels|comments)$")


def pull_json(owner, repo, p):
    return {
        "url": f"http://fake/repos/{owner}/{repo}/pulls/{p['number']}",
        "html_url": f"https://github.example/{owner}/{repo}/pull/{p['number']}",
        "node_id": f"PR_{p['number']}",
        "number": p["number"],
        "state": p["state"],
        "title": p["title"],
        "body": p["body"],
        "draft": p["draft"],
        "merged_at": None,
        "labels": [{"name": n} for n in p["labels"]],
        "head": {"label": f"{owner}:{p['head']}", "ref": p["head"], "sha": "0" * 40},
        "base": {"label": f"{owner}:{p['base']}", "ref": p["base"], "sha": "0" * 40},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # No Nagle's wait: otherwise each answer's body (written after its headers) waits for the
    # client's delayed ACK of the headers, 40 ms a call, a cost no real forge adds.
    disable_nagle_algorithm = True
    token = ""

    def log_message(self, *args):
        pass

    def answer(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            value = json.loads(raw or b"null")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def checked(self):
        """Whether the request may go on; answers GitHub's refusal when not. Counts it."""
        with LOCK:
            STATE["calls"] += 1
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.answer(401, {"message": "Bad credentials"})
            return False
        if not self.headers.get("User-Agent"):
            self.answer(403, {"message": "Request forbidden by administrative rules."})
            return False
        return True

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_state":
            with LOCK:
                return self.answer(200, {"calls": STATE["calls"], "pulls": list(STATE["pulls"].values())})
        if not self.checked():
            return
        if m := PULLS.match(url.path):
            owner, repo = m.groups()
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            head = q.get("head", "")
            if not head.startswith(f"{owner}:"):
                return self.answer(422, {"message": "Validation Failed", "errors": [{"field": "head"}]})
            with LOCK:
                found = [
                    pull_json(owner, repo, p)
                    for p in STATE["pulls"].values()
                    if p["state"] == q.get("state", "open")
                    and p["head"] == head[len(owner) + 1 :]
                    and ("base" not in q or p["base"] == q["base"])
                ]
            return self.answer(200, found)
        if m := PULL.match(url.path):
            owner, repo, n = m.groups()
            with LOCK:
                p = STATE["pulls"].get(int(n))
                if p is None:
                    return self.answer(404, {"message": "Not Found"})
                return self.answer(200, pull_json(owner, repo, p))
        self.answer(404, {"message": "Not Found"})

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/_reset":
            with LOCK:
                STATE["next"] = 1
                STATE["pulls"] = {}
                STATE["calls"] = 0
            return self.answer(200, {})
        if not self.checked():
            return
        req = self.body()
        if req is None:
            return self.answer(400, {"message": "Problems parsing JSON"})
        if m := PULLS.match(url.path):
            owner, repo = m.groups()
            for field in ("title", "head", "base"):
                if not isinstance(req.get(field), str) or not req[field]:
                    return self.answer(422, {"message": "Validation Failed", "errors": [{"field": field, "code": "missing_field"}]})
            with LOCK:
                if any(p["state"] == "open" and p["head"] == req["head"] for p in STATE["pulls"].values()):
                    return self.answer(422, {"message": "Validation Failed", "errors": [
                        {"resource": "PullRequest", "code": "custom", "message": f"A pull request already exists for {owner}:{req['head']}."}]})
                n = STATE["next"]
                STATE["next"] += 1
                p = {"number": n, "state": "open", "title": req["title"], "body": req.get("body") or "",
                     "draft": bool(req.get("draft")), "head": req["head"], "base": req["base"], "labels": [], "comments": []}
                STATE["pulls"][n] = p
                return self.answer(201, pull_json(owner, repo, p))
        if m := ISSUE_PART.match(url.path):
            owner, repo, n, part = m.groups()
            with LOCK:
                p = STATE["pulls"].get(int(n))
                if p is None:
                    return self.answer(404, {"message": "Not Found"})
                if part == "labels":
                    labels = req.get("labels")
                    if not isinstance(labels, list) or not all(isinstance(l, str) for l in labels):
                        return self.answer(422, {"message": "Validation Failed"})
                    p["labels"] += [l for l in labels if l not in p["labels"]]
                    return self.answer(200, [{"name": l} for l in p["labels"]])
                if not isinstance(req.get("body"), str):
                    return self.answer(422, {"message": "Validation Failed"})
                p["comments"].append(req["body"])
                return self.answer(201, {"id": len(p["comments"]), "body": req["body"]})
        self.answer(404, {"message": "Not Found"})

    def do_PATCH(self):
        url = urlsplit(self.path)
        if not self.checked():
            return
        req = self.body()
        if req is None:
            return self.answer(400, {"message": "Problems parsing JSON"})
        if m := PULL.match(url.path):
            owner, repo, n = m.groups()
            with LOCK:
                p = STATE["pulls"].get(int(n))
                if p is None:
                    return self.answer(404, {"message": "Not Found"})
                for field in ("title", "body", "state"):
                    if field in req:
                        p[field] = req[field]
                return self.answer(200, pull_json(owner, repo, p))
        self.answer(404, {"message": "Not Found"})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    Handler.token = args.token
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
