#!/usr/bin/env python3
"""A real SMTP server for Authura's tests: aiosmtpd catching every message into a directory.

Started by `authura_testkit::smtp::SmtpSink`. It listens on 127.0.0.1 on a port the kernel picks,
prints `READY <port>` on stdout once it accepts connections, and writes each received message as
one JSON file (`000001.json`, ...) in `--dir`, atomically (temporary file, then rename). It exits
when its standard input closes, so it never outlives the test process that started it.
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, help="where to write one JSON file per message")
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--cert", help="PEM certificate chain (TLS modes)")
    parser.add_argument("--key", help="PEM private key (TLS modes)")
    parser.add_argument("--auth-user", help="require AUTH with this user")
    parser.add_argument("--auth-password", help="the password for --auth-user")
    args = parser.parse_args()
    if args.tls != "none" and not (args.cert and args.key):
        parser.error("--cert and --key are required with --tls starttls|implicit")
    if bool(args.auth_user) != bool(args.auth_password):
        parser.error("--auth-user and --auth-password go together")
    return args


def body_part(message, kind):
    """The decoded text of the first text/<kind> part, or an empty string."""
    try:
        part = message.get_body(preferencelist=(kind,))
        if part is None:
            return ""
        return part.get_content().replace("\r\n", "\n")
    except Exception as error:  # a malformed part must not lose the message
        return f"[unreadable {kind} part: {error}]"


class Catcher:
    """The aiosmtpd handler: every accepted message becomes a JSON file."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.sequence = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        transport = server.transport
        record = {
            "mail_from": envelope.mail_from or "",
            "to": list(envelope.rcpt_tos),
            "from": str(message.get("From", "")),
            "subject": str(message.get("Subject", "")),
            "text": body_part(message, "plain"),
            "html": body_part(message, "html"),
            "raw": raw.decode("utf-8", "replace"),
            "tls": transport is not None and transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data if session.authenticated else None,
        }
        number = next(self.sequence)
        final = os.path.join(self.out_dir, f"{number:06}.json")
        temporary = os.path.join(self.out_dir, f".{number:06}.json.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.replace(temporary, final)
        return "250 Message accepted for delivery"


def make_authenticator(user, password):
    expected = (user.encode("utf-8"), password.encode("utf-8"))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == expected
        )
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    return authenticator


async def serve(args):
    loop = asyncio.get_running_loop()
    tls_context = None
    if args.tls != "none":
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)
    handler = Catcher(args.dir)
    authenticator = make_authenticator(args.auth_user, args.auth_password) if args.auth_user else None
    # aiosmtpd only knows about STARTTLS; on an implicit-TLS socket (and in plain mode, a local
    # relay) AUTH has to be allowed without it.
    auth_require_tls = args.tls == "starttls" or not args.auth_user

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=tls_context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            auth_required=bool(args.auth_user),
            auth_require_tls=auth_require_tls,
            authenticator=authenticator,
            loop=loop,
        )

    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=0,
        ssl=tls_context if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    # The parent holds our stdin; when it goes away (even killed), stdin reaches end of file.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def main():
    args = parse_args()
    # Plain-text AUTH is deliberate here (a local relay); don't repeat the warning per connection.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    os.makedirs(args.dir, exist_ok=True)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
