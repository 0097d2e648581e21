# A team's service receiving the relay's forwards: pip install standardwebhooks
import os, sqlite3
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks.webhooks import Webhook

webhook = Webhook(os.environ["AIRUDDER_FORWARD_SECRET"])  # the relay's whsec_… key
# The webhook-ids acted on, kept on disk: a restart forgets none of them.
seen = sqlite3.connect(os.environ.get("SEEN_DB", "seen.sqlite3"))
seen.execute("CREATE TABLE IF NOT EXISTS seen (webhook_id TEXT PRIMARY KEY)")

def act(kind, event):  # your work, by the kind the relay names in airudder-event
    if kind in ("task_notification", "workflow_call_completion"):
        print(kind, event["task_id"], [call["result"] for call in event["details"]], flush=True)
    elif kind == "chatbot_session_end":
        print(kind, event["call_id"], event.get("intention"), flush=True)
    elif kind == "pds_event":  # {"type": "TaskStatus" | "AgentStatus" | "ContactStatus", "body": …}
        print(kind, event["type"], flush=True)
    else:  # workflow_list_completion, workflow_status_change, raw_<name>: see relay/README.md
        print(kind, sorted(event), flush=True)

class Receive(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            event = webhook.verify(body, dict(self.headers))  # signature and timestamp
        except Exception:
            return self.answer(401)
        try:  # one transaction: the id is remembered if act() returns, and only then
            with seen:
                id = self.headers["webhook-id"]  # the same on every delivery of one event
                if seen.execute("INSERT OR IGNORE INTO seen VALUES (?)", (id,)).rowcount:
                    act(self.headers["airudder-event"], event)
        except Exception:
            return self.answer(500)  # the relay tries again later
        self.answer(200)

    def answer(self, status):
        self.send_response(status), self.end_headers()

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Receive).serve_forever()
