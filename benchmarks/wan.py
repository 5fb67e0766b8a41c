"""The limiter over modelled WAN paths: sustained rate, worst sliding second and E113 per profile.

    python benchmarks/wan.py [--quick] [--rates 20,100] [--profiles NAME,...] [--modes paced]
                             [--out benchmarks/results]

For each network profile a fake server runs in its own process with that profile's
:class:`~mmsjson.testing.network.NetworkModel` and a strict sliding-window limit of R; for each R,
three clients send over real loopback sockets: ``ThroughputLimiter(mode="exact")``,
``ThroughputLimiter(mode="paced")`` and a naive loop that acquires an
``aiolimiter.AsyncLimiter(R, 1)`` before each try (an E113 is tried again through it after
0.1-0.2 s). Reported from the server's arrival times: accepted per second in the steady part
divided by R, the most arrivals (accepted or refused) in any sliding second, and E113 as a share
of requests. The bound an exact client cannot beat, ``R / (1 + margin + mean uplink excess)``, is
shown beside it. Writes ``wan.json``, ``wan.md`` and ``wan.png`` (arrivals per sliding second) to
``--out``; the machine's load average and the client's CPU share are recorded with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiolimiter import AsyncLimiter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import KEY, free_port, process, typical_mms
from mmsjson import MMSClient, ThroughputLimiter
from mmsjson.errors import MMSError, ThroughputExceeded
from mmsjson.retry import RetryPolicy
from mmsjson.testing import FakeMMSServer
from mmsjson.testing.network import PROFILES, NetworkModel, max_in_window, sustained_rate

HERE = Path(__file__).resolve().parent


class _Server(FakeMMSServer):
    """The fake server, plus a route giving the arrival times of accepted requests."""

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/_fake/wan-accepted", self._accepted_times)
        return app

    async def _accepted_times(self, request: web.Request) -> web.Response:
        return web.json_response([r.at for r in self.received if r.status == "success"])


async def serve(port: int, profile: str) -> None:
    server = _Server(port=port, api_key=KEY, network=PROFILES[profile], record=True)
    async with server:
        print(f"listening {server.port}", flush=True)
        await asyncio.Event().wait()


def uplink_excess(network: NetworkModel, samples: int = 200_000) -> float:
    """The mean uplink delay above its minimum (loss spikes included), by sampling."""
    rng = random.Random(7)
    draws = [network.uplink_delay(rng) for _ in range(samples)]
    floor = network.uplink.floor if network.uplink.shape == "exponential" else max(
        0.0, network.uplink.mean - 6 * network.uplink.jitter
    )
    return sum(draws) / len(draws) - floor


async def one_run(base: str, rate: int, mode: str, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    mms = typical_mms()
    async with aiohttp.ClientSession() as session:
        async with session.post(base.replace("/ep/v2/", "/_fake/reset"), json={"throughput": rate}) as r:
            await r.read()
        naive = AsyncLimiter(rate, 1) if mode == "naive" else None
        limiter = None if naive else ThroughputLimiter(rate, mode=mode)  # type: ignore[arg-type]
        in_flight = max(64, rate)
        async with MMSClient(
            KEY, service_id="1", sender="12345", base_url=base, throughput=None, limiter=limiter,
            max_in_flight=in_flight, retry=RetryPolicy(max_attempts=1) if naive else None,
        ) as client:
            gate = asyncio.Semaphore(2 * in_flight)
            failed = 0

            async def one(i: int) -> None:
                nonlocal failed
                async with gate:
                    try:
                        if naive is None:
                            await client.send(mms, f"1774{i:07d}")
                            return
                        while True:
                            await naive.acquire()
                            try:
                                await client.send(mms, f"1774{i:07d}")
                                return
                            except ThroughputExceeded:
                                await asyncio.sleep(random.uniform(0.1, 0.2))
                    except MMSError:
                        failed += 1

            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(count)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            backoffs = limiter.stats.backoffs if limiter is not None else 0
        async with session.get(base.replace("/ep/v2/", "/_fake/stats"), params={"times": "1"}) as r:
            stats = await r.json()
        async with session.get(base.replace("/ep/v2/", "/_fake/wan-accepted")) as r:
            accepted = await r.json()
    arrivals = sorted(stats["arrivals"])
    return {
        "rate": rate,
        "mode": mode,
        "requests": count,
        "sent": stats["received"],
        "accepted": stats["accepted"],
        "failed": failed,
        "sustained_over_rate": sustained_rate(accepted) / rate,
        "max_in_sliding_second": max_in_window(arrivals),
        "e113": stats["e113"],
        "e113_share": stats["e113"] / max(1, stats["received"]),
        "backoffs": backoffs,
        "client_cpu_share": cpu / wall,
        "arrivals": [t - arrivals[0] for t in arrivals],
    }


async def run_matrix(args: argparse.Namespace) -> dict[str, Any]:
    profiles = args.profiles or list(PROFILES)
    rates = args.rates or ([100] if args.quick else [20, 100, 1000])
    seconds = {20: 15.0, 100: 8.0, 1000: 6.0} if not args.quick else {20: 5.0, 100: 4.0, 1000: 3.0}
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "runs": [],
    }
    for profile in profiles:
        port = free_port()
        base = f"http://127.0.0.1:{port}/ep/v2/"
        excess = uplink_excess(PROFILES[profile])
        with process([sys.executable, str(HERE / "wan.py"), "--serve", str(port), profile], "listening"):
            for rate in rates:
                for mode in args.modes or ("exact", "paced", "naive"):
                    print(f"{profile} R={rate} {mode} ...", flush=True)
                    run = await one_run(base, rate, mode, seconds.get(rate, 4.0))
                    run["profile"] = profile
                    run["bound"] = 1 / (1.005 + excess)
                    run["load"] = os.getloadavg()[0]
                    results["runs"].append(run)
                    print(
                        f"   sustained {run['sustained_over_rate']:.3f} R (bound {run['bound']:.3f}), "
                        f"max {run['max_in_sliding_second']}, E113 {run['e113']}, "
                        f"CPU {run['client_cpu_share']:.0%}", flush=True,
                    )
    results["load_after"] = os.getloadavg()
    return results


def plot(runs: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from mmsjson.testing.network import per_sliding_second

    chosen = [r for r in runs if r["profile"] in ("60±20", "60±20 1% loss") and r["rate"] == 100]
    if not chosen:
        chosen = runs[:3]
    figure, axes = plt.subplots(len(chosen), 1, figsize=(8, 2.2 * len(chosen)), squeeze=False)
    for axis, run in zip(axes[:, 0], chosen, strict=True):
        edges, counts = per_sliding_second(run["arrivals"], step=0.05)
        axis.plot(edges, counts, label=f"{run['mode']}: arrivals in the last second")
        axis.axhline(run["rate"], color="red", linestyle="--", label=f"limit R={run['rate']}")
        axis.set_title(f"{run['profile']}, {run['mode']}", fontsize="small")
        axis.set_ylim(0, max(run["rate"] * 1.2, max(counts, default=0) * 1.05))
        axis.legend(loc="lower right", fontsize="x-small")
    axes[-1, 0].set_xlabel("seconds since the first arrival")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return True


def markdown(results: dict[str, Any]) -> str:
    loads = [r["load"] for r in results["runs"]]
    lines = [
        f"## Limiter over modelled WAN paths ({results['when']}, Python {results['python']}, "
        f"{results['cpus']} CPUs, 1-minute load average {min(loads):.1f}-{max(loads):.1f} during the runs)",
        "",
        "Fake server in its own process with a network model (uplink delay before a request counts as "
        "arrived, downlink delay before the answer leaves, 1 % loss = a 0.2-2 s spike per direction), "
        "strict sliding one-second window of R. Sustained = accepted per second in the steady part / R. "
        "Bound = 1 / (1 + margin + mean uplink excess), what an exact client can reach.",
        "",
        "| path (uplink unless stated) | R | bound | exact | max/s | E113 | paced | max/s | E113 "
        "| naive AsyncLimiter(R, 1) | max/s | E113 | client CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["profile"], r["rate"], r["mode"]): r for r in results["runs"]}
    for profile, rate in dict.fromkeys((r["profile"], r["rate"]) for r in results["runs"]):
        any_run = next(r for m in ("exact", "paced", "naive") if (r := keyed.get((profile, rate, m))))
        cells = [profile, str(rate), f"{any_run['bound']:.3f}"]
        cpu = 0.0
        for mode in ("exact", "paced", "naive"):
            run = keyed.get((profile, rate, mode))
            if run is None:
                cells += ["", "", ""]
                continue
            cpu = max(cpu, run["client_cpu_share"])
            cells += [
                f"{run['sustained_over_rate']:.3f}", str(run["max_in_sliding_second"]),
                f"{run['e113']} ({run['e113_share']:.1%})",
            ]
        cells.append(f"{cpu:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![arrivals per sliding second, R=100](wan.png)", ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="R = 100 only, shorter runs")
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--profiles", type=lambda s: s.split(","), default=None)
    parser.add_argument("--modes", type=lambda s: s.split(","), default=None, help="exact,paced,naive (all)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = asyncio.run(run_matrix(args))
    args.out.mkdir(parents=True, exist_ok=True)
    plotted = plot(results["runs"], args.out / "wan.png")
    for run in results["runs"]:
        run.pop("arrivals")
    (args.out / "wan.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.out / "wan.md").write_text(report)
    print(report)
    if not plotted:
        print("(matplotlib is not installed: pip install -e '.[bench]' for wan.png)")


if __name__ == "__main__":
    main()
