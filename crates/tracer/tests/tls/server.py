"""HTTPS test server (python3 ssl, i.e. OpenSSL): GET /<status> answers that
status with a 2-byte body, HTTP/1.1 keep-alive. Prints its port, then serves.
Usage: server.py CERT KEY [PORT] (PORT 0 or absent: any free port)"""
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: the status line, headers and body leave in one SSL_write
    # (unbuffered, two small writes meet Nagle and delayed ACKs: 40 ms each).
    wbufsize = 65536

    def do_GET(self):
        try:
            code = int(self.path.strip("/").split("/")[0])
        except ValueError:
            code = 400
        body = b"ok"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
