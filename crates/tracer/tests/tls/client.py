"""HTTPS test client (python3 ssl, i.e. OpenSSL): waits for a line on stdin
(so the test can attach first), then GETs each path on one keep-alive
connection and prints each status. Usage: client.py PORT PATH..."""
import http.client
import ssl
import sys

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
sys.stdin.readline()
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
for path in sys.argv[2:]:
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    print(resp.status, flush=True)
conn.close()
