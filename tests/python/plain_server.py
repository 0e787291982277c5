"""A server that is not a servicemock, for hops with [:expect=any].

Python's own http.server on a loopback port chosen by the OS (printed on
the first line of stdout). GET or HEAD /status/N answers status N with a
short text body; anything else answers 200 "hello from python". Runs until
killed.
"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, with_body):
        status, text = 200, "hello from python"
        parts = self.path.split("/")
        if len(parts) >= 3 and parts[1] == "status" and parts[2].isdigit():
            status = int(parts[2])
            text = "I'm a teapot" if status == 418 else f"status {status} as asked"
        body = text.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
sys.stdout.close()
server.serve_forever()
