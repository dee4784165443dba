"""The NoneBot2 project of tests/onebot_nonebot.rs: one OneBot v11 adapter, one plugin.

Configured by environment variables only (the test sets DRIVER, HOST, PORT, ONEBOT_*), so the
same project serves reverse WebSocket, forward WebSocket, HTTP POST and the HTTP API at once.
"""

import nonebot
from nonebot.adapters.onebot.v11 import Adapter

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)
nonebot.load_plugins("plugins")

if __name__ == "__main__":
    nonebot.run()
