#!/usr/bin/env python3
"""Soak client for scripts/soak.sh (python3 standard library only): mixed traffic against one `g3n serve`
on loopback for a bounded time and request count, then a report.

Traffic, picked at random by each of --clients threads: Ollama generate and chat (streamed and whole),
chat with tools, structured output (format schemas), Ollama and OpenAI embeddings, OpenAI chat and
completions (streamed and whole), OpenAI tool calls and json_schema output, clients that hang up
mid-stream, malformed requests (bad JSON, unknown model, wrong method, bad options), and every
--unload-every seconds one client unloads the model (keep_alive 0) so the next request reloads it.

A well-formed request fails when its status is not 2xx or its body (each NDJSON line, each SSE event) is
not the JSON it should be; a malformed one fails when it is not answered 4xx. RSS is read from
/proc/PID/status after the warm-up (start) and at the end, both with the model loaded.
Exit status: 0 when no request failed and the end RSS is within --rss-tolerance of the start."""
import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


class Failure(Exception):
    pass


class Soak:
    def __init__(self, args):
        self.a = args
        self.lock = threading.Lock()
        self.latencies = []          # seconds, well-formed requests answered 2xx
        self.counts = {}             # kind -> served
        self.failures = []           # (kind, message)
        self.malformed = 0           # malformed requests answered 4xx as they should be
        self.disconnects = 0
        self.unloads = 0
        self.total = 0
        self.stop_at = 0.0
        self.last_unload = time.monotonic()

    # ---- HTTP ----
    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=self.a.request_timeout)

    def call(self, method, path, body=None, raw=None):
        c = self.conn()
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), r.getheader("Content-Type", "")
        finally:
            c.close()

    # ---- checks ----
    @staticmethod
    def ndjson(text):
        lines = [json.loads(l) for l in text.splitlines() if l.strip()]
        if not lines or not lines[-1].get("done"):
            raise Failure("stream did not end with done: " + text[-200:])
        return lines

    @staticmethod
    def sse(text):
        events = [l[6:] for l in text.splitlines() if l.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            raise Failure("SSE stream did not end with [DONE]: " + text[-200:])
        return [json.loads(e) for e in events[:-1]]

    def expect_ok(self, status, text):
        if not 200 <= status < 300:
            raise Failure("status %d: %s" % (status, text[:300]))

    # ---- well-formed requests ----
    def opts(self):
        return {"num_predict": self.a.num_predict, "temperature": random.choice([0, 0.7]), "seed": random.randint(0, 1 << 30)}

    def gen(self, stream):
        s, t, _ = self.call("POST", "/api/generate", {"model": self.a.model, "prompt": random.choice(
            ["Why is the sky blue?", "Write a haiku.", "Count to five."]), "stream": stream, "options": self.opts()})
        self.expect_ok(s, t)
        if stream:
            self.ndjson(t)
        elif "response" not in json.loads(t):
            raise Failure("no response: " + t[:200])

    def chat(self, stream, tools=False, schema=False):
        body = {"model": self.a.model, "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
                "stream": stream, "options": self.opts()}
        if tools:
            body["tools"] = TOOLS
        if schema:
            body["format"] = SCHEMA
        s, t, _ = self.call("POST", "/api/chat", body)
        self.expect_ok(s, t)
        msgs = self.ndjson(t) if stream else [json.loads(t)]
        if schema and not stream:
            content = msgs[0]["message"]["content"]
            try:
                json.loads(content)
            except ValueError:
                if msgs[0].get("done_reason") != "length":  # cut by num_predict: a prefix, not yet a value
                    raise Failure("schema output is not JSON: " + content[:200])

    def embed(self):
        s, t, _ = self.call("POST", "/api/embed", {"model": self.a.model, "input": ["Hello there", "Second input"]})
        self.expect_ok(s, t)
        e = json.loads(t)["embeddings"]
        if len(e) != 2 or not e[0]:
            raise Failure("embeddings: " + t[:200])

    def oa_embed(self):
        s, t, _ = self.call("POST", "/v1/embeddings", {"model": self.a.model, "input": "Hello there"})
        self.expect_ok(s, t)
        if not json.loads(t)["data"][0]["embedding"]:
            raise Failure("openai embeddings: " + t[:200])

    def oa_chat(self, stream, tools=False, schema=False):
        body = {"model": self.a.model, "messages": [{"role": "user", "content": "Weather in Rome?"}], "stream": stream,
                "max_tokens": self.a.num_predict, "temperature": 0.5, "seed": random.randint(0, 1 << 30)}
        if tools:
            body["tools"] = TOOLS
            body["tool_choice"] = random.choice(["auto", "required"])
        if schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
        s, t, _ = self.call("POST", "/v1/chat/completions", body)
        self.expect_ok(s, t)
        if stream:
            self.sse(t)
        elif not json.loads(t)["choices"]:
            raise Failure("no choices: " + t[:200])

    def oa_completion(self, stream):
        s, t, _ = self.call("POST", "/v1/completions", {"model": self.a.model, "prompt": "Once upon a time",
                                                         "max_tokens": self.a.num_predict, "stream": stream})
        self.expect_ok(s, t)
        if stream:
            self.sse(t)
        elif not json.loads(t)["choices"]:
            raise Failure("no choices: " + t[:200])

    # ---- the rest ----
    def disconnect(self):
        """Opens a long streamed generation, reads its first bytes, and hangs up."""
        sock = socket.create_connection(("127.0.0.1", self.a.port), timeout=self.a.request_timeout)
        try:
            body = json.dumps({"model": self.a.model, "prompt": "Tell a long story.", "stream": True,
                               "options": {"num_predict": 200}}).encode()
            sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            first = sock.recv(256)
            if not first.startswith(b"HTTP/1.1 200"):
                raise Failure("disconnect: " + first[:100].decode("latin-1"))
        finally:
            sock.close()
        with self.lock:
            self.disconnects += 1

    def malformed_request(self):
        cases = [("POST", "/api/chat", None, b'{"model": "tiny", "messages": ['),
                 ("POST", "/api/generate", {"model": "no-such-model", "prompt": "x"}, None),
                 ("GET", "/api/chat", None, None),
                 ("POST", "/api/generate", {"model": self.a.model, "prompt": "x", "options": {"temperature": "hot"}}, None),
                 ("POST", "/v1/chat/completions", {"model": self.a.model, "messages": "not a list"}, None),
                 ("POST", "/api/embed", {"model": self.a.model, "input": [1, {}]}, None)]
        method, path, body, raw = random.choice(cases)
        s, t, _ = self.call(method, path, body, raw)
        if not 400 <= s < 500:
            raise Failure("malformed %s %s answered %d: %s" % (method, path, s, t[:200]))
        with self.lock:
            self.malformed += 1

    def unload(self):
        s, t, _ = self.call("POST", "/api/generate", {"model": self.a.model, "keep_alive": 0})
        self.expect_ok(s, t)
        with self.lock:
            self.unloads += 1

    KINDS = ["gen", "gen_stream", "chat", "chat_stream", "chat_tools", "chat_schema", "embed", "oa_embed", "oa_chat",
             "oa_chat_stream", "oa_tools", "oa_tools_stream", "oa_schema", "oa_completion", "oa_completion_stream",
             "disconnect", "malformed"]

    def run_one(self, kind):
        return {
            "gen": lambda: self.gen(False), "gen_stream": lambda: self.gen(True),
            "chat": lambda: self.chat(False), "chat_stream": lambda: self.chat(True),
            "chat_tools": lambda: self.chat(random.random() < 0.5, tools=True),
            "chat_schema": lambda: self.chat(False, schema=True), "embed": self.embed, "oa_embed": self.oa_embed,
            "oa_chat": lambda: self.oa_chat(False), "oa_chat_stream": lambda: self.oa_chat(True),
            "oa_tools": lambda: self.oa_chat(False, tools=True), "oa_tools_stream": lambda: self.oa_chat(True, tools=True),
            "oa_schema": lambda: self.oa_chat(False, schema=True), "oa_completion": lambda: self.oa_completion(False),
            "oa_completion_stream": lambda: self.oa_completion(True), "disconnect": self.disconnect,
            "malformed": self.malformed_request, "unload": self.unload,
        }[kind]()

    def take(self):
        """The next request's kind, or None when the time or count budget is spent."""
        with self.lock:
            if time.monotonic() >= self.stop_at or self.total >= self.a.max_requests:
                return None
            self.total += 1
            if self.a.unload_every > 0 and time.monotonic() - self.last_unload >= self.a.unload_every:
                self.last_unload = time.monotonic()
                return "unload"
        return random.choice(self.KINDS)

    def worker(self):
        while True:
            kind = self.take()
            if kind is None:
                return
            t0 = time.monotonic()
            try:
                self.run_one(kind)
            except Exception as e:  # a failure of this request, whatever went wrong
                with self.lock:
                    self.failures.append((kind, "%s: %s" % (type(e).__name__, e)))
                continue
            with self.lock:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                if kind not in ("disconnect", "malformed", "unload"):
                    self.latencies.append(time.monotonic() - t0)

    def phase(self, seconds):
        self.stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=self.worker) for _ in range(self.a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's process, for RSS")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--seconds", type=float, default=1800)
    ap.add_argument("--warmup", type=float, default=60, help="traffic before the start RSS is read (counted too)")
    ap.add_argument("--max-requests", type=int, default=1000000)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--num-predict", type=int, default=16)
    ap.add_argument("--unload-every", type=float, default=300)
    ap.add_argument("--request-timeout", type=float, default=120)
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    a = ap.parse_args()
    s = Soak(a)
    t0 = time.monotonic()
    s.phase(min(a.warmup, a.seconds))
    s.run_one("gen")  # the model loaded when RSS is read
    rss_start = rss_kib(a.pid)
    s.phase(max(0.0, a.seconds - (time.monotonic() - t0)))
    s.run_one("gen")
    rss_end = rss_kib(a.pid)
    elapsed = time.monotonic() - t0
    lat = sorted(s.latencies)
    served = sum(s.counts.values())
    growth = (rss_end - rss_start) / rss_start
    print("soak: %.0f s, %d clients, G3N_NUM_PARALLEL as the server was started" % (elapsed, a.clients))
    print("  requests served: %d (%s)" % (served, ", ".join("%s %d" % kv for kv in sorted(s.counts.items()))))
    print("  well-formed answered: %d; malformed answered 4xx: %d; mid-stream hang-ups: %d; unloads: %d"
          % (len(lat), s.malformed, s.disconnects, s.unloads))
    print("  failures: %d" % len(s.failures))
    for kind, msg in s.failures[:20]:
        print("    %s: %s" % (kind, msg))
    print("  latency (well-formed): p50 %.3f s, p99 %.3f s, max %.3f s" % (pct(lat, 50), pct(lat, 99), lat[-1] if lat else float("nan")))
    print("  RSS: start %.1f MiB, end %.1f MiB (%+.2f%%, limit %.0f%%)"
          % (rss_start / 1024, rss_end / 1024, 100 * growth, 100 * a.rss_tolerance))
    ok = not s.failures and abs(growth) <= a.rss_tolerance
    print("soak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
