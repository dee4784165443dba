#!/usr/bin/env python3
"""Load measurement for `qqfleet sim`: N logged-in sessions, each with a held poll2.

Loopback only, bounded, Python stdlib only. It starts the simulator binary itself, logs a few
sessions in through the real QR path (ptqrshow -> scan -> ptqrlogin -> check_sig -> getvfwebqq
-> login2 -> get_online_buddies2), mints the rest with POST /sim/sessions/bulk (a documented
load-testing aid), parks one poll2 on every session and reads the simulator's RSS (VmRSS) and
CPU time from /proc. Prints one JSON object with the figures.

    python3 scripts/sim_load.py --binary target/release/qqfleet --sessions 10000

Both processes need about N+100 file descriptors; the script raises its soft RLIMIT_NOFILE to
the hard limit and the simulator inherits it.
"""

import argparse
import asyncio
import http.client
import json
import os
import resource
import select
import subprocess
import sys
import time
import urllib.parse

D_REF = "http://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2"
S_REF = "http://s.web2.qq.com/proxy.html?v=20130916001&callback=1&id=1"


def hash33(s):
    e = 0
    for c in s:
        e = (e * 33 + ord(c)) % 2**32
    return e & 0x7FFFFFFF


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def proc_cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12] are utime and stime (14th and 15th of the full line).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Http:
    """A tiny blocking client with a cookie jar (one cookie per name, first wins)."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None, json_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if json_body is not None:
            body = json.dumps(json_body)
            h["Content-Type"] = "application/json"
        elif body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";")[0]
        conn.close()
        return r.status, dict(r.getheaders()), data


def real_login(port):
    """The whole QR path, as a client would do it, scanned through the control API."""
    c = Http(port)
    st, _, _ = c.request("GET", "/ssl.ptlogin2.qq.com/ptqrshow?appid=501004106&e=0&l=M&s=5&d=72&v=4&t=0.5")
    assert st == 200
    qrsig = c.cookies["qrsig"]
    st, _, body = Http(port).request("POST", "/sim/qr/scan", json_body={"qrsig": qrsig, "confirm": True})
    assert st == 200, body
    _, _, body = c.request("GET", f"/ssl.ptlogin2.qq.com/ptqrlogin?ptqrtoken={hash33(qrsig)}&webqq_type=10")
    args = body.decode().split("','")
    assert body.startswith(b"ptuiCB('0'"), body
    url = urllib.parse.urlsplit(args[2])
    st, _, _ = c.request("GET", f"{url.path}?{url.query}")
    assert st == 302
    ptwebqq = c.cookies["ptwebqq"]
    _, _, body = c.request("GET", f"/s.web2.qq.com/api/getvfwebqq?ptwebqq={ptwebqq}&clientid=53999199&psessionid=&t=1",
                           headers={"Referer": S_REF})
    vf = json.loads(body)["result"]["vfwebqq"]
    r = json.dumps({"ptwebqq": ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online"})
    _, _, body = c.request("POST", "/d1.web2.qq.com/channel/login2", body=urllib.parse.urlencode({"r": r}),
                           headers={"Referer": D_REF})
    res = json.loads(body)["result"]
    psid = res["psessionid"]
    _, _, body = c.request("GET", f"/d1.web2.qq.com/channel/get_online_buddies2?vfwebqq={vf}&clientid=53999199&psessionid={psid}&t=1",
                           headers={"Referer": D_REF})
    assert json.loads(body)["retcode"] == 0
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    return {"qq": res["uin"], "psessionid": psid, "clientid": 53999199, "cookie": cookie, "ptwebqq": ptwebqq}


def poll_request(port, s):
    r = json.dumps({"ptwebqq": s["ptwebqq"], "clientid": s["clientid"], "psessionid": s["psessionid"], "key": ""})
    body = urllib.parse.urlencode({"r": r})
    return (f"POST /d1.web2.qq.com/channel/poll2 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Referer: {D_REF}\r\nOrigin: http://d1.web2.qq.com\r\nCookie: {s['cookie']}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


async def park(port, s, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(poll_request(port, s))
        await writer.drain()
    return reader, writer


async def read_answer(reader, timeout):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await asyncio.wait_for(reader.readexactly(length), timeout)


def inject_all(port, qqs):
    """Injects one buddy message per account over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for qq in qqs:
        conn.request("POST", "/sim/inject", body=json.dumps({"qq": qq, "kind": "buddy", "text": "churn"}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    conn.close()


async def churn(port, pid, sessions, conns, skip, report):
    """Every held poll gets one event and parks a new poll at once on the same connection,
    as clients did; measures the simulator's CPU while 10,000 events go through."""
    idx = [i for i in range(len(sessions)) if i not in skip]

    async def one(i):
        reader, writer = conns[i]
        ans = json.loads(await read_answer(reader, 120))
        assert ans["result"][0]["poll_type"] == "message", ans
        writer.write(poll_request(port, sessions[i]))
        await writer.drain()

    c0, w0 = proc_cpu_secs(pid), time.monotonic()
    readers = asyncio.gather(*(one(i) for i in idx))
    await asyncio.to_thread(inject_all, port, [sessions[i]["qq"] for i in idx])
    await readers
    c1, w1 = proc_cpu_secs(pid), time.monotonic()
    report["churn_events"] = len(idx)
    report["churn_secs"] = round(w1 - w0, 2)
    report["churn_sim_cpu_percent"] = round(100 * (c1 - c0) / (w1 - w0), 1)
    report["churn_events_per_sec"] = round(len(idx) / (w1 - w0))


def stats(port):
    _, _, body = Http(port).request("GET", "/sim/stats")
    return json.loads(body)


async def main_async(args, port, pid, sessions, report):
    sem = asyncio.Semaphore(500)
    t0 = time.monotonic()
    conns = await asyncio.gather(*(park(port, s, sem) for s in sessions))
    report["park_secs"] = round(time.monotonic() - t0, 2)
    deadline = time.monotonic() + 120
    while True:
        pending = stats(port)["pending_polls"]
        if pending >= len(sessions) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    report["pending_polls"] = pending
    await asyncio.sleep(2)
    report["rss_kib_with_held_polls"] = proc_rss_kib(pid)
    report["sim_fds_with_held_polls"] = proc_fds(pid)
    c0, w0 = proc_cpu_secs(pid), time.monotonic()
    await asyncio.sleep(args.idle_secs)
    c1, w1 = proc_cpu_secs(pid), time.monotonic()
    report["cpu_percent_idle_with_held_polls"] = round(100 * (c1 - c0) / (w1 - w0), 3)
    # Deliver one message to a sample of held polls and time the answers.
    sample = list(range(0, len(sessions), max(1, len(sessions) // args.deliver_sample)))[: args.deliver_sample]
    lat = []
    for i in sample:
        t = time.monotonic()
        st, _, body = Http(port).request("POST", "/sim/inject",
                                         json_body={"qq": sessions[i]["qq"], "kind": "buddy", "text": "load"})
        assert st == 200, body
        ans = json.loads(await read_answer(conns[i][0], 10))
        assert ans["result"][0]["poll_type"] == "message", ans
        lat.append(time.monotonic() - t)
    lat.sort()
    report["deliver_sample"] = len(lat)
    report["deliver_ms_p50"] = round(1000 * lat[len(lat) // 2], 2) if lat else None
    report["deliver_ms_max"] = round(1000 * lat[-1], 2) if lat else None
    if args.churn:
        await churn(port, pid, sessions, conns, set(sample), report)
    for _, w in conns:
        w.close()
    await asyncio.sleep(1)
    report["pending_polls_after_close"] = stats(port)["pending_polls"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/qqfleet")
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--real-logins", type=int, default=5)
    ap.add_argument("--idle-secs", type=float, default=10.0)
    ap.add_argument("--deliver-sample", type=int, default=100)
    ap.add_argument("--churn", action="store_true",
                    help="also deliver one event to every held poll and re-park it, measuring CPU")
    args = ap.parse_args()
    if not 1 <= args.sessions <= 20000:
        sys.exit("--sessions must be 1..=20000")
    nofile = raise_nofile(args.sessions + 200)
    if nofile < args.sessions + 100:
        sys.exit(f"RLIMIT_NOFILE {nofile} is too low for {args.sessions} sessions")
    sim = subprocess.Popen([args.binary, "sim", "--listen", "127.0.0.1:0", "--hold", "600",
                            "--send-min-interval-ms", "0", "--target-burst-per-min", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([sim.stdout], [], [], 30)
        if not ready:
            sys.exit("simulator did not start")
        first = sim.stdout.readline().decode().strip()
        port = int(first.rsplit(":", 1)[1])
        pid = sim.pid
        report = {"sessions": args.sessions, "nofile": nofile}
        time.sleep(0.5)
        report["rss_kib_start"] = proc_rss_kib(pid)
        sessions = [real_login(port) for _ in range(min(args.real_logins, args.sessions))]
        left = args.sessions - len(sessions)
        while left > 0:
            n = min(left, 2500)
            _, _, body = Http(port).request("POST", "/sim/sessions/bulk", json_body={"count": n})
            sessions.extend(json.loads(body))
            left -= n
        time.sleep(1)
        report["rss_kib_with_sessions"] = proc_rss_kib(pid)
        asyncio.run(main_async(args, port, pid, sessions, report))
        n = args.sessions
        report["kib_per_session"] = round((report["rss_kib_with_sessions"] - report["rss_kib_start"]) / n, 2)
        report["kib_per_held_poll"] = round((report["rss_kib_with_held_polls"] - report["rss_kib_with_sessions"]) / n, 2)
        print(json.dumps(report, indent=2))
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    main()
