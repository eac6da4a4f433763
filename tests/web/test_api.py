"""The web app's JSON API against a real server on a loopback port (conftest.py's tiny run):
models, chat with tool calls as events, completion with probabilities, the token view,
every refusal (a 4xx with a one-line reason), the generation limit, a client that hangs up,
the fixed table of files, and `minillm serve` itself.

    python -m pytest tests/web/test_api.py
"""
import argparse
import http.client
import json
import socket
import time

import pytest
from web_run import CALC_REPLY, EXAMPLES, PAGE_TEXT

from minillm.chat.template import render
from minillm.common import UserError
from minillm.web import cli
from minillm.web.server import Server


def request(server, method, path, body=None, headers=None, raw=None):
    """(status, headers, parsed JSON or text) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    head = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers={**head, **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    kind = resp.getheader("Content-Type", "")
    if kind.startswith("application/json"):
        payload = json.loads(payload)
    elif kind.startswith("text/event-stream"):
        payload = [json.loads(line[6:]) for line in payload.decode().split("\n") if line.startswith("data: ")]
    return resp.status, resp, payload


def post(server, path, body):
    return request(server, "POST", path, body)


def ask(text="What is 17*23?", **fields):
    return {"messages": [{"role": "user", "content": text}], **fields}


# ---- what the run offers --------------------------------------------------------------

def test_models_lists_the_runs_writers_in_lecture_order(server):
    status, _, info = request(server, "GET", "/api/models")
    assert status == 200
    assert [m["name"] for m in info["models"]] == ["base", "sft", "rl"]     # no reward model, notes/, .sft.old-1/
    assert info["chat_default"] == "sft" and info["complete_default"] == "base"
    assert info["examples"] == 2 and info["run"] == "tiny"
    assert info["models"][0]["context_len"] == 1024 and info["limits"]["generations"] == 2


# ---- chat -----------------------------------------------------------------------------

def test_chat_streams_a_calculator_call_as_parts_and_tokens(server):
    status, resp, events = post(server, "/api/chat", ask(temperature=0))
    assert status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    start, done = events[0], events[-1]
    assert start["type"] == "start" and start["model"] == "sft" and start["dropped"] == 0
    assert done["type"] == "done" and done["finish_reason"] == "stop"
    assert done["message"] == {"role": "assistant", "content": CALC_REPLY}
    assert done["tool_calls"] == [{"tool": "python", "input": "17*23", "output": "391"}]
    assert [e["part"] for e in events if e["type"] == "part"] == ["python", "output", "text"]
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(e["text"] for e in tokens) == "17*23391Done!"
    assert [e["text"] for e in tokens if e["forced"]] == ["", "3", "9", "1", ""]   # the tool's output
    assert all(e["p"] is None for e in tokens if e["forced"])
    assert all(0.99 < e["p"] <= 1 for e in tokens if not e["forced"])
    assert tokens[0]["token"] == "<|python_start|>" and tokens[0]["special"]


def test_chat_with_the_search_tool_and_without_streaming(server):
    status, _, answer = post(server, "/api/chat", ask("Who founded Velmora?", model="rl", stream=False))
    assert status == 200 and answer["model"] == "rl"
    [call] = answer["tool_calls"]
    assert call["tool"] == "search" and call["input"] == "Velmora" and "Ada Quill" in call["output"]
    parts = answer["message"]["content"]
    assert [p["type"] for p in parts] == ["search", "output", "text"] and parts[2]["text"] == "Ok"
    assert parts[1]["text"] == call["output"] and PAGE_TEXT[:40] in call["output"]


def test_a_long_conversation_drops_its_oldest_exchanges(server):
    messages = []
    for n in range(4):
        messages += [{"role": "user", "content": f"question {n}?"}, {"role": "assistant", "content": CALC_REPLY}]
    messages.append({"role": "user", "content": "and now?"})
    status, _, answer = post(server, "/api/chat", {"messages": messages, "max_tokens": 20, "stream": False})
    assert status == 200 and answer["dropped"] >= 1
    assert answer["prompt_tokens"] <= 64 - 20 and answer["message"]["content"] == CALC_REPLY


def test_typed_special_tokens_and_markup_stay_plain_text(server, tok):
    typed = "<script>alert(1)</script><|assistant_end|><|python_start|>"
    status, _, info = post(server, "/api/tokenize", {"messages": [{"role": "user", "content": typed}]})
    assert status == 200
    specials = [t["token"] for t in info["tokens"] if t["special"]]
    assert specials == ["<|bos|>", "<|user_start|>", "<|user_end|>"]        # only the template's own
    assert info["count"] == 3 + len(typed.encode())                           # bytes, one token each
    status, _, info = post(server, "/api/tokenize", {"text": typed})
    assert not any(t["special"] for t in info["tokens"]) and "".join(t["token"] for t in info["tokens"]) == typed
    # the model's prompt holds the same plain bytes, and its reply is the usual one
    status, _, answer = post(server, "/api/chat", ask(typed, model="rl", stream=False))
    assert status == 200 and answer["prompt_tokens"] == 4 + len(typed.encode())
    assert [p["type"] for p in answer["message"]["content"]] == ["search", "output", "text"]


# ---- completion ---------------------------------------------------------------------------

def test_complete_gives_each_token_its_probability_and_the_alternatives(server):
    status, _, events = post(server, "/api/complete", {"prompt": "Sing", "max_tokens": 7, "temperature": 0, "top": 3})
    assert status == 200
    start, done = events[0], events[-1]
    assert [t["token"] for t in start["prompt"]] == ["<|bos|>", "S", "i", "n", "g"]
    assert start["model"] == "base" and start["prompt"][0]["special"]
    tokens = [e for e in events if e["type"] == "token"]
    assert done["text"] == " la la " and len(tokens) == 7 and done["finish_reason"] == "length"
    for e in tokens:
        assert 0.9 < e["p"] < 0.95                                       # e^8.2 / (e^8.2 + 266)
        assert len(e["top"]) == 3 and e["top"][0] == [e["token"], e["p"]]  # greedy: the top token
        assert e["top"][0][1] > e["top"][1][1] >= e["top"][2][1]


# ---- the token view -------------------------------------------------------------------

def test_tokenize_a_conversation_and_a_training_example(server, tok):
    conv = EXAMPLES[0]["messages"]
    status, _, info = post(server, "/api/tokenize", {"messages": conv})
    ids, mask = render(conv, tok)
    assert status == 200 and [t["id"] for t in info["tokens"]] == ids.tolist()
    assert [t["mask"] for t in info["tokens"]] == mask.tolist() and info["supervised"] == int(mask.sum())
    status, _, example = post(server, "/api/tokenize", {"example": 1})
    assert example["kind"] == "identity" and example["messages"] == EXAMPLES[1]["messages"]
    assert [t["id"] for t in example["tokens"]] == render(EXAMPLES[1]["messages"], tok)[0].tolist()


# ---- refusals: a 4xx and one line saying why -------------------------------------------------

BAD = [
    ("/api/chat", b"{not json", 400, "bad JSON"),
    ("/api/chat", b"[1, 2]", 400, "must be a JSON object"),
    ("/api/chat", b"\xff\xfe", 400, "not UTF-8"),
    ("/api/chat", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ("/api/chat", b'{"messages": [{"role": "user", "content": "a"}], "seed": 1' + b"0" * 400 + b"}",
     400, "seed must be an integer from 0 to 2147483647, not 1000000000"),
    ("/api/chat", b'{"messages": [{"role": "user", "content": "a"}], "temperature": 1e999}',
     400, "temperature must be a number from 0 to 2, not Infinity"),
    ("/api/chat", {"messages": []}, 400, "non-empty list"),
    ("/api/chat", {"messages": [{"role": "bot", "content": "hi"}]}, 400, "unknown role 'bot'"),
    ("/api/chat", {"messages": [{"role": "user", "content": 5}]}, 400, "must be a string"),
    ("/api/chat", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
     400, "must end with a user message"),
    ("/api/chat", ask(colour="red"), 400, "unknown field 'colour'"),
    ("/api/chat", ask(model="gpt-5"), 400, 'unknown model "gpt-5" (this run has: base, sft, rl)'),
    ("/api/chat", ask(max_tokens=65), 400, "max_tokens must be an integer from 1 to 64"),
    ("/api/chat", ask(max_tokens=2.5), 400, "max_tokens must be an integer"),
    ("/api/chat", ask(temperature=-1), 400, "temperature must be a number from 0 to 2"),
    ("/api/chat", ask(top_p=0), 400, "top_p must be a number"),
    ("/api/chat", ask(stream="yes"), 400, "stream must be true or false"),
    ("/api/chat", ask("x" * 20_001), 413, "20,001 characters; the most is 20,000"),
    ("/api/chat", ask("word " * 200), 400, "does not fit in sft's context"),
    ("/api/chat", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 100
                   + [{"role": "user", "content": "c"}]}, 413, "201 messages; the most is 200"),
    ("/api/complete", {"prompt": "x" * 600, "max_tokens": 512}, 400, "prompt too long for base"),
    ("/api/complete", {"prompt": 7}, 400, "prompt must be a string"),
    ("/api/complete", {"top": 50}, 400, "top must be an integer from 0 to 20"),
    ("/api/tokenize", {}, 400, 'exactly one of "text", "messages" or "example"'),
    ("/api/tokenize", {"text": "a", "example": 0}, 400, "exactly one of"),
    ("/api/tokenize", {"example": 2}, 400, "example must be an integer from 0 to 1"),
    ("/api/tokenize", {"text": "y" * 300_000}, 413, "the most is 262,144"),
]


@pytest.mark.parametrize("path, body, status, reason", BAD, ids=[r for *_, r in BAD])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(server, path, body, status, reason):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, _, answer = request(server, "POST", path, raw=raw)
    assert got == status, answer
    assert reason in answer["error"] and "\n" not in answer["error"]
    assert server.app.running == 0


def test_a_body_must_be_json_with_a_length(server):
    status, _, answer = request(server, "POST", "/api/chat", raw=b"x", headers={"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type: application/json" in answer["error"]
    conn = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
    conn.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n\r\n"
                 % server.server_address[1])
    assert conn.recv(200).startswith(b"HTTP/1.0 411")
    conn.close()


def test_only_so_many_generations_run_at_once(server):
    with server.app.generation(), server.app.generation():           # both slots taken
        status, _, answer = post(server, "/api/chat", ask())
        assert status == 429 and "2 generations are running" in answer["error"]
        status, _, _ = post(server, "/api/tokenize", {"text": "hi"})    # not a generation: served
        assert status == 200
    status, _, _ = post(server, "/api/chat", ask(stream=False))
    assert status == 200


def test_a_client_that_hangs_up_stops_its_generation(server):
    port = server.server_address[1]
    body = json.dumps({"prompt": "go", "max_tokens": 500}).encode()      # the model never stops
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"POST /api/complete HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    seen = b""
    while b'"type": "token"' not in seen:
        got = conn.recv(4096)
        assert got, seen
        seen += got
    conn.close()                                                      # gone after the first token
    deadline = time.time() + 10
    while (server.app.running or not server.app.log or server.app.log[-1]["endpoint"] != "complete") \
            and time.time() < deadline:
        time.sleep(0.01)
    record = server.app.log[-1]
    assert record["end"] == "stopped by the client" and record["tokens"] < 500
    assert server.app.running == 0


# ---- files: a fixed table, nothing else ------------------------------------------------------

def test_the_page_and_its_files(server):
    status, resp, page = request(server, "GET", "/")
    assert status == 200 and resp.getheader("Content-Type").startswith("text/html")
    assert "script-src" not in resp.getheader("Content-Security-Policy")        # default-src 'self'
    assert "default-src 'self'" in resp.getheader("Content-Security-Policy")
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    for path, kind in [("/app.js", "text/javascript"), ("/style.css", "text/css"), ("/report", "text/html"),
                       ("/report/loss.png", "image/png")]:
        status, resp, _ = request(server, "GET", path)
        assert status == 200 and resp.getheader("Content-Type").startswith(kind), path
    status, resp, _ = request(server, "GET", "/report")
    assert "sandbox" in resp.getheader("Content-Security-Policy")
    status, _, report = request(server, "GET", "/api/report")
    assert report == {"run": "tiny", "report": "/report", "plots": ["/report/loss.png"]}


@pytest.mark.parametrize("path", ["/../setup.py", "/static/app.js", "/index.html", "/report/../report.html",
                                  "/report/%2e%2e/report.html", "/report/../../etc/passwd", "/report/",
                                  "/report/loss.png/", "//etc/passwd", "/api/models/../../x"])
def test_no_path_reaches_a_file_outside_the_table(server, path):
    status, _, answer = request(server, "GET", path)
    assert status == 404 and "no such" in answer["error"]


def test_wrong_method_and_wrong_host(server):
    status, _, answer = request(server, "GET", "/api/chat")
    assert status == 405 and "takes POST" in answer["error"]
    status, _, answer = request(server, "POST", "/", {"a": 1})
    assert status == 405
    for method in ("PUT", "DELETE", "OPTIONS"):
        status, _, answer = request(server, method, "/api/chat")
        assert status == 405 and answer["error"] == f"/api/chat takes POST, not {method}"
    status, _, answer = request(server, "GET", "/api/models", headers={"Host": "evil.example:80"})
    assert status == 403 and "evil.example" in answer["error"]


# ---- the command ---------------------------------------------------------------------------

def serve(*argv):
    parser = argparse.ArgumentParser(prog="minillm serve")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def test_serve_refuses_a_missing_or_empty_run(tmp_path):
    with pytest.raises(UserError, match="no run directory"):
        serve("--run", tmp_path / "nope")
    with pytest.raises(UserError, match="no checkpoints in"):
        serve("--run", tmp_path)


def test_serve_prints_its_address_and_warns_off_loopback(run_dir, monkeypatch, capsys):
    monkeypatch.setattr(Server, "serve_forever", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    serve("--run", run_dir, "--host", "0.0.0.0", "--port", 0)
    out, err = capsys.readouterr()
    assert "warning: --host 0.0.0.0 lets other machines reach this app" in err
    assert out.startswith("minillm serve: http://0.0.0.0:") and "models: base, sft, rl" in out
    serve("--run", run_dir, "--port", 0)
    out, err = capsys.readouterr()
    assert "warning" not in err and out.startswith("minillm serve: http://127.0.0.1:")


def test_serve_says_when_the_port_is_taken(run_dir, server):
    with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1 port {server.server_address[1]}"):
        serve("--run", run_dir, "--port", server.server_address[1])
