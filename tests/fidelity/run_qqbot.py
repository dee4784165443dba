"""Runs pandolia/qqbot (PyPI `qqbot`, 2.3.11, 2018) unmodified against `qqfleet sim`.

Usage: run_qqbot.py BASE_URL BENCH_DIR [QQ]
  BASE_URL   the simulator, e.g. http://127.0.0.1:8900
  BENCH_DIR  qqbot's working folder (config, QR png, saved login, contact db)
  QQ         qqbot's own `-q QQ`: first try the login saved in BENCH_DIR ("auto login")

What this harness changes, and nothing else:
  1. Transport: every request qqbot makes through `requests` to `scheme://HOST.qq.com/...` is sent
     to `BASE_URL/HOST.qq.com/...` instead (the only change the fidelity standard allows).
     qqbot itself still sees and compares its own https:// URLs. Any other URL is refused
     (loopback only), except the simulator's own (it hands out URLs that point back into it).
  2. Shim `HTMLParser.unescape`: Python 3.9 removed it and qqbot 2.3.11 calls it at import time;
     it is put back as `html.unescape`, which is what it did.
The bot logic is the user's plugin a qqbot user writes: a message starting with "ping" is
answered with "pong " + the message, through qqbot's own `bot.SendTo`. qqbot is configured as
its users do: command-line options and its own config file in BENCH_DIR (no plugins).
"""

import html
import html.parser
import os
import re
import sys

import requests

BASE = sys.argv[1].rstrip("/")
BENCH = sys.argv[2]
QQ = sys.argv[3:4]
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


# qqbot's own configuration file, as a user writes it: no plugins (on its first start qqbot
# would otherwise write a sample file that loads two sample plugins on every later start, one
# of them a daily 8:00 restart).
CONF = os.path.join(BENCH, "v2.3.conf")
if not os.path.exists(CONF):
    with open(CONF, "w", encoding="utf-8") as f:
        f.write(repr({"默认配置": {"plugins": [], "pluginsConf": {}}}))

# -p 0: no QQBot-Term server (it would listen on a fixed port); -nr: no restart on offline;
# -ndm: no daemon; -d: debug log; -q QQ: resume the saved login first.
bot.Login(["-b", BENCH, "-p", "0", "-nr", "-ndm", "-d"] + (["-q", QQ[0]] if QQ else []))
bot.Run()
