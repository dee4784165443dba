"""Runs python-smartqq-client (PyPI `python-smartqq-client`, 0.4.10, 2017) unmodified against
`qqfleet sim`.

Usage: run_smartqq.py BASE_URL   (run it in an empty folder: the library writes barcode.png and
                                  its log bot.log into the current folder)

What this harness changes, and nothing else:
  1. Transport: every request the library makes through `requests` to `scheme://HOST.qq.com/...`
     is sent to `BASE_URL/HOST.qq.com/...` instead (the only change the fidelity standard
     allows). Any other URL is refused, except the simulator's own.
  2. Shim `pymongo.MongoClient`: the library keeps its contact cache in a MongoDB server on
     localhost:27017 (`pymongo.MongoClient()`); it is replaced by `mongomock.MongoClient`, the
     same API in memory. Storage only: nothing of the protocol goes through it.
The bot logic is the user's code a library user writes, with the library's public API: a
buddy or group message starting with "ping" is answered with "pong " + the message, after the
library has named the sender (as its own example handlers do).
"""

import re
import sys

import mongomock
import pymongo
import requests

BASE = sys.argv[1].rstrip("/")
if not re.match(r"^http://127\.0\.0\.1:\d+$", BASE):
    sys.exit("run_smartqq.py: BASE_URL must be http://127.0.0.1:PORT, got %r" % BASE)

# Change 1: the URL rewrite at the transport.
_HOST_RE = re.compile(r"^https?://([A-Za-z0-9.-]*qq\.com)(?=[/?]|$)/?")
_request = requests.Session.request


def _rewritten(self, method, url, *args, **kwargs):
    new = _HOST_RE.sub(lambda m: "%s/%s/" % (BASE, m.group(1)), url, count=1)
    if new == url and not url.startswith(BASE + "/"):
        raise requests.ConnectionError("fidelity harness: refusing non-WebQQ URL %r" % url)
    return _request(self, method, new, *args, **kwargs)


requests.Session.request = _rewritten

# Shim 2: MongoDB in memory.
pymongo.MongoClient = mongomock.MongoClient

from pyqqclient.SmartqqClient import SmartqqClient  # noqa: E402

client = None


def on_friend(message):
    client.default_friend_message_handler(message)
    text = SmartqqClient.get_message_content(message["value"])
    print("FIDELITY got buddy %r" % text, flush=True)
    if text.startswith("ping"):
        print("FIDELITY send %r" % client.send_message(message["value"]["from_uin"], "pong " + text), flush=True)
    return False


def on_group(message):
    client.default_group_message_handler(message)
    text = SmartqqClient.get_message_content(message["value"])
    print("FIDELITY got group %r" % text, flush=True)
    if text.startswith("ping"):
        print("FIDELITY send %r" % client.send_group_message(message["value"]["from_uin"], "pong " + text), flush=True)
    return False


client = SmartqqClient(friend_message_handler=on_friend, group_message_handler=on_group)
print("FIDELITY starting", flush=True)
client.run()
