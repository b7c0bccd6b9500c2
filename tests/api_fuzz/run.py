"""Fuzzes a running dev-mode server against its own OpenAPI document.

Logs in through the dev simulator first, so the fuzzer's requests carry a real bearer token
and reach the authenticated paths, then runs schemathesis with the checks that matter here:
no 5xx, every status and body as documented, bad input rejected. Exits non-zero on any
failure. Usage: run.py BASE_URL MAX_EXAMPLES

Three runs. The operations that end the token's session or delete its account come after the
first, with a token of their own, so that the first run keeps a live session to the end. The
web login's browser routes answer 404 to anyone without the ticket's cookie, which is all the
first run reaches; the last run holds a real ticket and its cookie, so they are fuzzed past
that door too (its event stream is left out there: with the cookie it stays open for the
ticket's life).
"""

# The operations (by operationId) that end the caller's session or account.
DESTRUCTIVE = ["end_all_sessions", "end_session", "delete_account"]

import json
import os
import subprocess
import sys
import tempfile
import urllib.request


def post_json(url, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def token(base, user):
    code = post_json(f"{base}/sim/wx.login", {"user": user})["code"]
    return post_json(f"{base}/login", {"code": code})["token"]


def ticket(base):
    """A web-login ticket: its id, and its cookie as a Cookie header's value."""
    request = urllib.request.Request(f"{base}/web-login", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        ticket_id = json.load(response)["id"]
        cookie = response.headers["set-cookie"].split(";")[0]
    return ticket_id, cookie


def schemathesis(base, max_examples, token, selection, config=None):
    settings = ["--config-file", config] if config else []
    command = [sys.executable, "-m", "schemathesis.cli"] + settings + [
        "run", f"{base}/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
        "unsupported_method,allow_header_conformance,missing_required_header",
        "--max-examples", max_examples,
        "--phases", "examples,coverage,fuzzing",
        "--workers", "2",
        "--seed", "20261124",
        "--header", f"Authorization: Bearer {token}",
        "--warnings", "off",
    ] + selection
    return subprocess.call(command)


def main():
    base, max_examples = sys.argv[1].rstrip("/"), sys.argv[2]
    keep = [arg for op in DESTRUCTIVE for arg in ("--exclude-operation-id", op)]
    first = schemathesis(base, max_examples, token(base, "fuzzer"), keep)
    only = [arg for op in DESTRUCTIVE for arg in ("--include-operation-id", op)]
    second = schemathesis(base, max_examples, token(base, "fuzzer-leaving"), only)
    ticket_id, cookie = ticket(base)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[parameters]\n"path.id" = "{ticket_id}"\n')
    try:
        third = schemathesis(
            base,
            max_examples,
            token(base, "fuzzer-scanning"),
            ["--header", f"Cookie: {cookie}",
             "--include-tag", "web login", "--exclude-operation-id", "events"],
            config.name,
        )
    finally:
        os.unlink(config.name)
    sys.exit(first or second or third)


if __name__ == "__main__":
    main()
