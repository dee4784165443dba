"""Runs pandolia/qqbot (PyPI `qqbot`, 2.3.11, 2018) unmodified against `qqfleet sim`.

Usage: run_qqbot.py BASE_URL BENCH_DIR
  BASE_URL   the simulator, e.g. http://127.0.0.1:8900
  BENCH_DIR  an empty working folder for qqbot (config, QR png, contact db)

What this harness changes, and nothing else:
  1. Transport: every request qqbot makes through `requests` to `scheme://HOST.qq.com/...` is sent
     to `BASE_URL/HOST.qq.com/...` instead (the only change the fidelity standard allows).
     qqbot itself still sees and compares its own https:// URLs. Any other URL is refused
     (loopback only), except the simulator's own (it hands out URLs that point back into it).
  2. Shim `HTMLParser.unescape`: Python 3.9 removed it and qqbot 2.3.11 calls it at import time;
     it is put back as `html.unescape`, which is what it did.
The bot logic is the user's plugin a qqbot user writes: a message starting with "ping" is
answered with "pong " + the message, through qqbot's own `bot.SendTo`.
"""

import html
import html.parser
import re
import sys

import requests

BASE = sys.argv[1].rstrip("/")
BENCH = sys.argv[2]
if not re.match(r"^http://127\.0\.0\.1:\d+$", BASE):
    sys.exit("run_qqbot.py: BASE_URL must be http://127.0.0.1:PORT, got %r" % BASE)

# Shim 2: HTMLParser.unescape (removed in Python 3.9).
if not hasattr(html.parser.HTMLParser, "unescape"):
    html.parser.HTMLParser.unescape = lambda self, s: html.unescape(s)

# Change 1: the URL rewrite at the transport.
_HOST_RE = re.compile(r"^https?://([A-Za-z0-9.-]*qq\.com)(?=[/?]|$)/?")
_request = requests.Session.request


def _rewritten(self, method, url, *args, **kwargs):
    new = _HOST_RE.sub(lambda m: "%s/%s/" % (BASE, m.group(1)), url, count=1)
    if new == url and not url.startswith(BASE + "/"):
        # Nothing but the simulator may be reached from a test. (URLs the simulator hands
        # out, like the check_sig URL in ptuiCB, already point back into it.)
        raise requests.ConnectionError("fidelity harness: refusing non-WebQQ URL %r" % url)
    return _request(self, method, new, *args, **kwargs)


requests.Session.request = _rewritten

from qqbot import _bot as bot  # noqa: E402  (after the shims, as a user script would import it)
from qqbot import qqbotslot  # noqa: E402


@qqbotslot
def onQQMessage(bot, contact, member, content):
    print("FIDELITY got %s %r" % (contact.ctype, content), flush=True)
    if content.startswith("ping"):
        bot.SendTo(contact, "pong " + content)


# -p 0: no QQBot-Term server (it would listen on a fixed port); -nr: no restart on offline;
# -ndm: no daemon; -d: debug log.
bot.Login(["-b", BENCH, "-p", "0", "-nr", "-ndm", "-d"])
bot.Run()
