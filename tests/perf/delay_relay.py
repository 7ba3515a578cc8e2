"""A delayed point-to-point IP link for kernels without ``netem``: two TUN devices, one relay.

    python -m tests.perf.delay_relay DEV_A DEV_B DELAY_MS SECONDS      # as root

Attaches to two existing TUN devices (``ip tuntap add dev X mode tun``, moved into network
namespaces by the caller) and copies every IP packet from one to the other ``DELAY_MS`` later,
both ways. Unlike a TCP proxy it forwards whole packets, ACKs included, so the two kernels' TCP
stacks see a real round trip of 2 x DELAY_MS (what Nagle waits on). Stops after SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def attach(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


async def main(dev_a: str, dev_b: str, delay: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    fd_a, fd_b = attach(dev_a), attach(dev_b)

    def forward(src: int, dst: int) -> None:
        while True:
            try:
                packet = os.read(src, 65536)
            except BlockingIOError:
                return
            loop.call_later(delay, _write, dst, packet)

    loop.add_reader(fd_a, forward, fd_a, fd_b)
    loop.add_reader(fd_b, forward, fd_b, fd_a)
    print("relay ready", flush=True)
    await asyncio.sleep(seconds)


def _write(fd: int, packet: bytes) -> None:
    with contextlib.suppress(OSError):  # the device went away at teardown
        os.write(fd, packet)


if __name__ == "__main__":
    a, b, ms, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    asyncio.run(main(a, b, ms / 1000, secs))
