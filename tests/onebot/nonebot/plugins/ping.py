"""Answers `ping` with `pong <self_id>`; on each bot's connection calls get_login_info and
get_friend_list once. Every step is written as a JSON line to $QQFLEET_NB_LOG for the test."""

import json
import os

from nonebot import get_driver, on_fullmatch
from nonebot.adapters.onebot.v11 import Bot, MessageEvent

LOG = os.environ["QQFLEET_NB_LOG"]


def log(entry):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


@get_driver().on_bot_connect
async def connected(bot: Bot):
    info = await bot.get_login_info()
    friends = await bot.get_friend_list()
    log({"connect": bot.self_id, "user_id": info["user_id"], "friends": len(friends)})


ping = on_fullmatch("ping")


@ping.handle()
async def answer(bot: Bot, event: MessageEvent):
    text = f"pong {bot.self_id}"
    log({"ping": bot.self_id, "type": event.message_type,
         "event_id": getattr(event, "event_id", None)})
    if event.message_type == "discuss":
        # The adapter's reply helper knows private and group only.
        await bot.call_api("send_discuss_msg", discuss_id=getattr(event, "discuss_id"), message=text)
    else:
        await ping.send(text)
