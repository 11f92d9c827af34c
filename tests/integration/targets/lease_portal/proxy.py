# SPDX-License-Identifier: GPL-3.0-or-later
"""nginx with TLS in front of the portal, configured with exactly the server block docs/portal.md documents.

  proxy.py conf DOCS DIR --name N --cert C --key K --listen ADDR:PORT --upstream PORT
        the ```nginx block of DOCS with only its placeholders replaced -> DIR/server.conf, wrapped by a minimal
        DIR/nginx.conf (pid, logs and temporary files in DIR) for a standalone master: nginx -c DIR/nginx.conf -p DIR/
  proxy.py wait URL CAFILE      until URL answers over TLS (the certificate checked against CAFILE)
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request

# the documented placeholders (docs/portal.md, "Behind nginx with TLS"), each replaced once or more, nothing else
CERT = "/etc/ssl/certs/portal.example.org.pem"
KEY = "/etc/ssl/private/portal.example.org.key"
NAME = "portal.example.org"
LISTEN = "listen 443 ssl;"
UPSTREAM = "proxy_pass http://127.0.0.1:8086;"


def documented_block(docs: str) -> str:
    with open(docs) as handle:
        blocks = re.findall(r"^```nginx\n(.*?)^```", handle.read(), re.M | re.S)
    if len(blocks) != 1:
        raise SystemExit("%s must document exactly one ```nginx block (found %d)" % (docs, len(blocks)))
    return blocks[0]


def substitute(block: str, name: str, cert: str, key: str, listen: str, upstream: int) -> str:
    for placeholder in (CERT, KEY, LISTEN, UPSTREAM):
        if block.count(placeholder) != 1:
            raise SystemExit("the documented nginx block must have %r once (found %d)" % (
                placeholder, block.count(placeholder)))
    block = block.replace(CERT, cert).replace(KEY, key).replace(NAME, name)
    block = block.replace(LISTEN, "listen %s ssl;" % listen)
    return block.replace(UPSTREAM, "proxy_pass http://127.0.0.1:%d;" % upstream)


def write_conf(args) -> None:
    folder = os.path.abspath(args.dir)
    block = substitute(documented_block(args.docs), args.name, args.cert, args.key, args.listen, args.upstream)
    for needed in ("proxy_set_header Host ", "proxy_set_header X-Forwarded-Proto https;"):
        if needed not in block:
            raise SystemExit("the documented nginx block lacks %r" % needed)
    os.makedirs(os.path.join(folder, "tmp"), exist_ok=True)
    with open(os.path.join(folder, "server.conf"), "w") as handle:
        handle.write(block)
    temp = "\n".join("    %s_temp_path %s/tmp/%s;" % (kind, folder, kind)
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(os.path.join(folder, "nginx.conf"), "w") as handle:
        handle.write("""# the test's own nginx master: only the documented server block inside
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
{temp}
    include {folder}/server.conf;
}}
""".format(folder=folder, temp=temp))
    print("nginx configuration from the documented block in %s" % folder)


def wait(url: str, cafile: str) -> None:
    context = ssl.create_default_context(cafile=cafile)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=2, context=context).read()
            print("nginx answers %s with TLS" % url)
            return
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                raise SystemExit("nginx does not answer %s: %s" % (url, error))
            time.sleep(0.2)


def main() -> int:
    if sys.argv[1] == "wait":
        wait(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["conf"])
    parser.add_argument("docs")
    parser.add_argument("dir")
    for option in ("--name", "--cert", "--key", "--listen"):
        parser.add_argument(option, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    write_conf(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
