"""Servers for the enrich tests, examples and benchmark.

RedisServer: a real redis-server on a free port in a temporary directory.
DelayProxy: a TCP proxy that forwards each reply chunk after a delay that
    can be changed while it runs (concurrent requests stay concurrent: every
    chunk waits its own delay), counting the bytes it saw.
HttpServer: a threaded HTTP/1.1 server whose /v/<id> answers the JSON
    document stored for <id> (404 when absent) after an optional sleep,
    failing with 503 the first `fail_first` times per id; /big/<id> answers
    a body of `big` bytes, /bad/<id> a body that is not JSON, /status/<n>/<id>
    status n. It counts requests per path.
resp(): a minimal Redis client (RESP2), independent of hiredis.
"""
import asyncio
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)


def resp(port, *cmds, host="127.0.0.1", timeout=10):
    """Sends the commands (lists of str) pipelined; returns the replies."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        out = b""
        for c in cmds:
            out += b"*%d\r\n" % len(c)
            for a in c:
                a = str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return [_read_reply(f) for _ in cmds]


class RedisServer:
    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="weir-redis-")
        self.port = port
        self.p = None
        self.start()

    def start(self, tries=5):
        for _ in range(tries):
            port = self.port or free_port()
            self.p = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--daemonize", "no", "--logfile",
                 os.path.join(self.dir, "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 30
            while time.time() < deadline and self.p.poll() is None:
                try:
                    if resp(port, ["PING"], timeout=2) == ["PONG"]:
                        self.port = port
                        return
                except (OSError, ConnectionError):
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("redis-server did not start")

    def cmd(self, *args):
        return resp(self.port, list(args))[0]

    def pipeline(self, cmds):
        return resp(self.port, *cmds)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.p = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class DelayProxy:
    """127.0.0.1:<port> -> upstream; replies wait `delay` seconds."""

    def __init__(self, upstream_port, delay=0.0, port=0):
        self.upstream = upstream_port
        self.delay = delay
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        if not self.ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port,
                                 reuse_address=True))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            cw.close()
            return

        async def up():
            try:
                while True:
                    d = await cr.read(65536)
                    if not d:
                        break
                    uw.write(d)
                    await uw.drain()
            except (OSError, asyncio.CancelledError):
                pass
            uw.close()

        def send(d):
            if not cw.is_closing():
                cw.write(d)

        async def down():
            try:
                while True:
                    d = await ur.read(65536)
                    if not d:
                        break
                    if self.delay > 0:
                        self.loop.call_later(self.delay, send, d)
                    else:
                        send(d)
            except (OSError, asyncio.CancelledError):
                pass
            self.loop.call_later(self.delay + 0.01, cw.close)

        await asyncio.gather(up(), down())

    def close(self):
        def stop():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.t.join(10)


class HttpServer:
    def __init__(self, data, latency=0.0, jitter=0.0, fail_first=0, big=0):
        self.data = data
        self.latency = latency
        self.jitter = jitter
        self.fail_first = fail_first
        self.big = big
        self.counts = {}
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without TCP_NODELAY the body
            # waits for the client's delayed ACK (about 40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def reply(self, code, body, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with outer.lock:
                    n = outer.counts.get(self.path, 0)
                    outer.counts[self.path] = n + 1
                lat = outer.latency
                if outer.jitter:
                    lat += random.uniform(0, outer.jitter)
                if lat > 0:
                    time.sleep(lat)
                parts = self.path.split("/")
                from urllib.parse import unquote
                ident = unquote(parts[-1])
                kind = parts[1] if len(parts) > 2 else ""
                if kind == "big":
                    return self.reply(200, b'"' + b"x" * outer.big + b'"')
                if kind == "bad":
                    return self.reply(200, b"<html>not json</html>",
                                      "text/html")
                if kind == "status":
                    return self.reply(int(parts[2]), b"{}")
                if n < outer.fail_first:
                    return self.reply(503, b"busy", "text/plain")
                if ident not in outer.data:
                    return self.reply(404, b"{}")
                return self.reply(200, json.dumps(outer.data[ident]).encode())

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.srv = S(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def requests(self, prefix=""):
        with self.lock:
            return sum(v for k, v in self.counts.items()
                       if k.startswith(prefix))

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
