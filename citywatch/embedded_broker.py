"""A pure-Python MQTT broker (amqtt) for the demo where Mosquitto is not installed.

python -m citywatch.embedded_broker PORT
"""

from __future__ import annotations

import asyncio
import sys


async def _serve(port: int) -> None:
    from amqtt.broker import Broker  # noqa: PLC0415

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    await asyncio.Event().wait()


def main() -> int:
    asyncio.run(_serve(int(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
