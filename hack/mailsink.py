# SPDX-License-Identifier: GPL-3.0-or-later
"""A real SMTP server on loopback that keeps what it receives (aiosmtpd), for tests and the demo.

  mailsink.py start [--port 8025] [--dir DIR]   start in the background (no-op if running)
  mailsink.py stop | status
  mailsink.py dump                              every stored message as JSON (envelope, headers, bodies)
  mailsink.py clear                             forget stored messages
  mailsink.py refuse ADDRESS... | refuse --none recipients answered 550 from now on (or none)

Messages are stored one file each under DIR/messages/ with the envelope in
X-Mailsink-* headers. Refused recipients are read from DIR/refuse at each
RCPT, so a test can change them without a restart.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DIR = os.environ.get("OSOPS_MAILSINK_HOME", os.path.join(REPO, ".mailsink"))
DEFAULT_PORT = int(os.environ.get("OSOPS_MAILSINK_PORT", "8025"))


def paths(home: str) -> dict:
    return {"messages": os.path.join(home, "messages"), "refuse": os.path.join(home, "refuse"),
            "pid": os.path.join(home, "mailsink.pid"), "log": os.path.join(home, "mailsink.log"),
            "port": os.path.join(home, "port")}


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            return conn.recv(3) == b"220"
    except OSError:
        return False


def running_pid(home: str) -> int | None:
    try:
        with open(paths(home)["pid"]) as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def serve(home: str, port: int) -> None:
    from aiosmtpd.controller import Controller  # only the server needs it

    where = paths(home)

    class Keep:
        def __init__(self):
            self.count = 0

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            try:
                with open(where["refuse"]) as handle:
                    refused = {line.strip().lower() for line in handle if line.strip()}
            except FileNotFoundError:
                refused = set()
            if address.strip().lower() in refused:
                return "550 5.1.1 <%s>: mailbox unavailable" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            self.count += 1
            name = "%.6f-%04d.eml" % (time.time(), self.count)
            head = "X-Mailsink-From: %s\r\nX-Mailsink-To: %s\r\n" % (envelope.mail_from, ", ".join(envelope.rcpt_tos))
            temp = os.path.join(where["messages"], "." + name)
            with open(temp, "wb") as handle:
                handle.write(head.encode() + envelope.original_content)
            os.rename(temp, os.path.join(where["messages"], name))  # readers never see half a message
            return "250 Message accepted for delivery"

    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    controller.stop()


def start(home: str, port: int) -> int:
    where = paths(home)
    os.makedirs(where["messages"], exist_ok=True)
    if running_pid(home) and answers(port):
        print("mailsink already running on 127.0.0.1:%d (%s)" % (port, home))
        return 0
    with open(where["log"], "ab") as log:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", "--dir", home, "--port", str(port)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(where["pid"], "w") as handle:
        handle.write(str(proc.pid))
    with open(where["port"], "w") as handle:
        handle.write(str(port))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if answers(port):
            print("mailsink on 127.0.0.1:%d, messages in %s" % (port, where["messages"]))
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print("mailsink did not start; see %s" % where["log"], file=sys.stderr)
    return 1


def stop(home: str) -> int:
    pid = running_pid(home)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while running_pid(home) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    try:
        os.unlink(paths(home)["pid"])
    except FileNotFoundError:
        pass
    print("mailsink stopped")
    return 0


def read_messages(home: str) -> list[dict]:
    folder = paths(home)["messages"]
    out = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".eml")) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), "rb") as handle:
            message = email.message_from_binary_file(handle, policy=email.policy.default)
        bodies = {"text": None, "html": None}
        attachments = []
        for part in message.walk():
            if part.is_multipart():
                continue
            if part.get_content_disposition() == "attachment":
                attachments.append(part.get_filename())
            elif part.get_content_type() == "text/plain" and bodies["text"] is None:
                bodies["text"] = part.get_content()
            elif part.get_content_type() == "text/html" and bodies["html"] is None:
                bodies["html"] = part.get_content()
        out.append({
            "file": name,
            "envelope_from": message["X-Mailsink-From"],
            "envelope_to": [a.strip().lower() for a in str(message["X-Mailsink-To"] or "").split(",") if a.strip()],
            "from": str(message["From"] or ""), "to": str(message["To"] or ""), "cc": str(message["Cc"] or ""),
            "subject": str(message["Subject"] or ""),
            "headers": {key: str(value) for key, value in message.items() if key.lower().startswith("x-")},
            "text": bodies["text"], "html": bodies["html"], "attachments": attachments,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "serve", "dump", "clear", "refuse"])
    parser.add_argument("addresses", nargs="*")
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--none", action="store_true", help="refuse: refuse nobody")
    args = parser.parse_args()
    home = os.path.abspath(args.dir)
    where = paths(home)
    if args.command == "serve":
        serve(home, args.port)
        return 0
    if args.command == "start":
        return start(home, args.port)
    if args.command == "stop":
        return stop(home)
    if args.command == "status":
        pid = running_pid(home)
        print("mailsink %s" % ("running, pid %d" % pid if pid else "not running"))
        return 0 if pid else 1
    if args.command == "dump":
        json.dump(read_messages(home), sys.stdout, indent=1)
        print()
        return 0
    if args.command == "clear":
        for name in os.listdir(where["messages"]) if os.path.isdir(where["messages"]) else []:
            os.unlink(os.path.join(where["messages"], name))
        return 0
    if args.command == "refuse":
        os.makedirs(home, exist_ok=True)
        with open(where["refuse"], "w") as handle:
            handle.write("".join(a + "\n" for a in ([] if args.none else args.addresses)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
