"""The Faust app: one per worker process, configured from the environment (streams/config.py).

Run it with ``groupwarden worker`` (or ``faust -A streams.app worker --without-web``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import faust
import mode
from mode import ServiceT

from streams.agents.classify import ClassifyStage, report_refused
from streams.agents.standing import StandingStage
from streams.config import Settings
from streams.kafka.outage import OutageLog
from streams.metrics import Metrics, metrics_url, serve
from streams.policy.reload import FolderWatch, Followed, Policy, Rules, load_policy

log = logging.getLogger(__name__)

STOP_SECONDS = 8.0  # a stopping worker exits by then: with the broker gone, Faust's consumer waits 60 s to stop
# The collector's thresholds in a worker. A batch's objects (its records, outputs and decided records) live until its
# acknowledgements, past the default 700 allocations of the youngest generation, so they were promoted to the
# oldest, whose collections walk every object alive: an eighth of the standing stage's CPU. Past this many, most die
# young. Each young collection still walks the objects of the batches in flight, whatever their number: at 50,000
# allocations they took ~15 us a violation, at 200,000 ~8 (the standing stage's decisions without Kafka).
GC_THRESHOLDS = (200_000, 20, 50)


class App(faust.App):
    """Starts the metrics endpoint, the early stages, the app's own services, then the other stages.
    ``@app.service`` would start them only once Faust's own recovery is done. Services start one after another: an
    early stage (the standing stage) starts first and its consumer group join and restore go on while the rest
    starts (the app's own services take a second or more); the classify stage's warm-up, which holds the event loop
    for a second, comes once that join has been asked for."""

    serve_metrics: Callable[[], None] | None = None
    # Called as Faust calls a service class: loop, beacon.
    early_stages: tuple[Callable[..., ServiceT], ...] = ()
    stages: tuple[Callable[..., ServiceT], ...] = ()
    _running_stages: list[ServiceT] = []  # noqa: RUF012 - replaced, never changed in place

    async def on_first_start(self) -> None:
        gc.set_threshold(*GC_THRESHOLDS)
        await super().on_first_start()
        if self.serve_metrics is not None:
            self.serve_metrics()
        if handlers := logging.getLogger().handlers:  # set up by the worker, which starts before its app
            outage = OutageLog()
            handlers[0].addFilter(outage)
            self.add_future(_say_when_recovered(outage))

    async def on_started(self) -> None:
        # What start-up built (the rule pack, the normalisation tables, the stages) lives as long as the worker:
        # collect the garbage start-up left, then keep the collector from walking the rest again on every full
        # collection (the shipped pack alone is 1.3M objects: 0.7-1 s a full collection, none once frozen).
        gc.collect()
        gc.freeze()
        await super().on_started()

    async def on_stop(self) -> None:
        deadline = threading.Timer(STOP_SECONDS, _exit_now)
        deadline.daemon = True  # a worker that stops in time exits without waiting for it
        deadline.start()
        # The stages first, though they started first: their batches in flight commit before anything of Faust's
        # (whose consumer waits a minute for a broker that is gone) may hold the worker up to its deadline.
        for stage in self._running_stages:
            await stage.stop()
        await super().on_stop()

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        early = [stage(loop=self.loop, beacon=self.beacon) for stage in self.early_stages]
        late = [stage(loop=self.loop, beacon=self.beacon) for stage in self.stages]
        self._running_stages = [*early, *late]
        return [*early, *super().on_init_dependencies(), *late]  # started one after another, in this order


async def _say_when_recovered(outage: OutageLog) -> None:
    while True:
        await asyncio.sleep(1.0)
        if (line := outage.recovered()) is not None:
            log.warning("%s", line)  # beside the warning that said the connection was lost


def _exit_now() -> None:
    """What has not been committed is read again by the next owner: at-least-once holds without a clean stop."""
    log.warning("the worker did not stop within %.0f s (is the broker gone?): exiting now", STOP_SECONDS)
    os._exit(1)


def worker(app: faust.App, loglevel: str) -> faust.Worker:
    """The Faust worker that runs ``app``, without the start-up spinner: to spin on every log record, it lowers the
    root logger to DEBUG and leaves it there, so every library's debug call (aiokafka's, once per partition per fetch)
    would build a record: ~5% of a busy worker's CPU."""
    made = faust.Worker(app, loglevel=loglevel, quiet=True)
    made.spinner = None
    return made


def create_app(settings: Settings, active: Followed | None = None, policy: Policy | None = None) -> faust.App:
    """The worker's app, with the stages ``settings.stages`` names. ``active``: the active rule pack, if already
    loaded, and ``policy`` for a worker that runs only the standing stage (the worker command loads them to refuse a
    broken pack before anything starts)."""
    metrics = Metrics()
    app = App(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=6,  # the embedded broker holds a new group's first join for half of this
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        datadir=str(settings.data_dir),
        web_enabled=False,
    )

    def serve_metrics() -> None:
        if (address := serve(settings.metrics_host, settings.metrics_port, metrics)) is not None:
            log.info("metrics on %s", metrics_url(*address))

    app.serve_metrics = serve_metrics
    if "classify" in settings.stages:
        app.early_stages, app.stages = _with_classify(settings, metrics, active)
    else:
        app.early_stages, app.stages = _standing_alone(settings, metrics, policy), ()
    return app


Stages = tuple[tuple[Callable[..., ServiceT], ...], tuple[Callable[..., ServiceT], ...]]


def _with_classify(settings: Settings, metrics: Metrics, active: Followed | None) -> Stages:
    """The classify stage, which follows the pack folders and tells the standing stage (if it runs here) of a new
    active pack."""
    if active is None:
        active = Followed("active", settings.rules_dir, with_policy=True)
    rules = active.rules = active.rules or active.load()
    assert rules.policy is not None
    policy = rules.policy
    metrics.describe_rules(rules.version, rules.policy.version, rules.pack.categories)
    follow = [active]
    if settings.shadow_rules_dir is not None:
        follow.append(shadow := Followed("shadow", settings.shadow_rules_dir, with_policy=False))
        try:
            shadow.rules = shadow.load()
            metrics.describe_shadow(shadow.rules.version)
        except Exception as exc:  # noqa: BLE001 - a broken candidate never stops the worker; it is followed still
            log.error("shadow rule pack in %s refused: %s", shadow.directory, exc)  # noqa: TRY400 - file, line, reason
            metrics.rules_refused.labels("shadow").set(1)
    standing: list[StandingStage] = []

    class Standing(StandingStage):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, policy, rules.version, metrics, **kwargs)
            standing.append(self)

    def use(new: Rules) -> None:
        assert new.policy is not None
        for stage in standing:
            stage.use(new.policy, new.version)

    class Classify(ClassifyStage):
        def __init__(self, **kwargs: Any) -> None:
            shadow = follow[1].rules if len(follow) > 1 else None
            super().__init__(
                settings,
                rules.classifier,
                metrics,
                shadow=shadow.classifier if shadow is not None else None,
                follow=follow,
                on_rules=use,
                **kwargs,
            )

    return ((Standing,) if "standing" in settings.stages else ()), (Classify,)


def _standing_alone(settings: Settings, metrics: Metrics, policy: Policy | None) -> tuple[Callable[..., ServiceT]]:
    """The standing stage without the classify stage: it needs the sanction policy and the pack's version, not its
    classifier, so the worker starts in a fraction of the time; it follows the pack folder itself."""
    rules = policy or load_policy(settings.rules_dir)
    metrics.describe_rules(rules.version, rules.policy.version, rules.summary.categories)

    class Standing(StandingStage):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, rules.policy, rules.version, metrics, **kwargs)
            self._rules = rules

        @mode.Service.task
        async def _follow_rules(self) -> None:
            """Every few seconds, apply a changed policy or pack version; refuse a broken one and keep the running."""
            watch = FolderWatch(settings.rules_dir)
            while settings.rules_poll_seconds and not self.should_stop:
                await self.sleep(settings.rules_poll_seconds)
                try:
                    if await asyncio.to_thread(watch.changed):
                        await self._reload()
                except Exception:  # following the folder is a convenience: never let it take the worker down
                    log.exception("checking the rule pack in %s failed", settings.rules_dir)

        async def _reload(self) -> None:
            try:
                new = await asyncio.to_thread(load_policy, settings.rules_dir)  # a cache miss reads the whole pack
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with the new pack, reported; the running one stays
                report_refused(metrics, "active", settings.rules_dir, self._rules.version, exc)
                return
            metrics.rules_refused.labels("active").set(0)
            if new.same_as(self._rules):
                log.info("rule pack in %s changed on disk but is still %s", settings.rules_dir, new.version)
                return
            self.use(new.policy, new.version)
            metrics.describe_rules(new.version, new.policy.version, new.summary.categories)
            metrics.rules_reloads.labels("active", "applied").inc()
            log.info("rule pack %s applied, replacing %s", new.version, self._rules.version)
            self._rules = new

    return (Standing,)


def __getattr__(name: str) -> Any:
    """``app``, made from the environment when first asked for (``faust -A streams.app``)."""
    if name == "app":
        globals()["app"] = made = create_app(Settings.from_env())
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
