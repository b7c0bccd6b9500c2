"""Fuzzes a running dev-mode server against its own OpenAPI document.

Logs in through the dev simulator first, so the fuzzer's requests carry a real bearer token
and reach the authenticated paths, then runs schemathesis with the checks that matter here:
no 5xx, every status and body as documented, bad input rejected. Exits non-zero on any
failure. Usage: run.py BASE_URL MAX_EXAMPLES

Two runs: the operations that end the token's session or delete its account come last, with
a token of their own, so that the first run keeps a live session to the end.
"""

# The operations (by operationId) that end the caller's session or account.
DESTRUCTIVE = ["end_all_sessions", "end_session", "delete_account"]

import json
import subprocess
import sys
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


def schemathesis(base, max_examples, token, selection):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
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
    sys.exit(first or second)


if __name__ == "__main__":
    main()
