# A team's service receiving the relay's forwards: pip install standardwebhooks
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks.webhooks import Webhook

webhook = Webhook(os.environ["AIRUDDER_FORWARD_SECRET"])  # the relay's whsec_… key

class Receive(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            notification = webhook.verify(body, dict(self.headers))  # signature and timestamp
        except Exception:
            self.send_response(401), self.end_headers()
            return
        # Act on it once: the webhook-id is the same for every delivery of one notification.
        print(self.headers["webhook-id"], notification["task_id"], flush=True)
        self.send_response(200), self.end_headers()

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Receive).serve_forever()
