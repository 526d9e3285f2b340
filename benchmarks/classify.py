"""Classify-stage throughput against plain pyahocorasick on `str`, measured in the same run.

    python -m benchmarks.classify [--messages 200000] [--rounds 5] [--demo-messages 20000]

Prints messages/s of: the baseline (one automaton of the same keywords over each raw message, no normalisation);
groupwarden's classifier on batches of 2,000 (normalise, match, allow phrases, detectors, verdicts); the whole stage
as the worker runs it (bytes in: parse and validate; verdict bytes out); and both again on every core, one process a
core as separate workers would run, each started as a worker starts. Ratios are against the baseline, and on every
core against one.

These machines drift by 2x within minutes, so the baseline, the classifier and the stage take turns on every slice
of 10,000 messages, and the figures are medians over rounds of the whole workload (each round's ratio is against
that round's baseline). Where the classifier's time goes is measured in each round too, step by step over the same
batches, and at the end how many texts the keyword prefilter lets through to the automaton.

A second line measures the default rule pack (scored rules, sets of common words for its combinations, generated
pinyin and look-alike variants) on the demo traffic (``streams/demo.py``: realistic chat, a few percent of spam), in
microseconds a message, against plain pyahocorasick on `str` with the pack's terms over the same texts, taking turns
slice by slice in every round as above.

The workload is built and held in memory before measuring; it is then frozen out of the garbage collector's sight
(``gc.freeze``), as the worker freezes what it builds at start-up, so collections walk only what a batch allocates.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import ahocorasick
import orjson

from benchmarks import workload
from streams import demo
from streams.config import DEFAULT_RULES
from streams.policy.classify import Classifier
from streams.policy.detectors import detect_batch
from streams.policy.matcher import Matcher
from streams.policy.normalize import NormalBatch
from streams.policy.rules import load_pack
from streams.policy.scoring import Scorer
from streams.records import ChatMessage, parse_message

BATCH = 2000
SLICE = 10_000  # messages each contender runs in turn


def _plain_automaton(keywords: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for keyword in keywords:
        automaton.add_word(keyword, keyword)
    automaton.make_automaton()
    return automaton


def _baseline(automaton: ahocorasick.Automaton, texts: list[str]) -> tuple[float, int]:
    """Seconds to run the automaton over each text, and the hits."""
    start = time.perf_counter()
    hits = 0
    for text in texts:
        for _ in automaton.iter(text):
            hits += 1
    return time.perf_counter() - start, hits


def _messages(texts: list[str]) -> list[ChatMessage]:
    return [ChatMessage(f"m{i}", f"g{i % 997}", f"u{i % 50_000}", 1_795_300_000_000, t) for i, t in enumerate(texts)]


def _raw(messages: list[ChatMessage]) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "message_id": m.message_id,
                "group_id": m.group_id,
                "sender_id": m.sender_id,
                "sent_at": m.sent_at_ms,
                "text": m.text,
            }
        )
        for m in messages
    ]


def _classify(classifier: Classifier, messages: list[ChatMessage]) -> tuple[float, int]:
    """Seconds to classify the messages in batches, and how many were flagged."""
    start = time.perf_counter()
    flagged = 0
    for i in range(0, len(messages), BATCH):  # each batch's verdicts dropped after it, as the worker sends them
        flagged += sum(v["decision"] != "allow" for v in classifier.classify_batch(messages[i : i + BATCH], 0))
    return time.perf_counter() - start, flagged


def _stage(classifier: Classifier, raw: list[bytes]) -> float:
    """Seconds for what the worker does between fetch and produce: bytes in, verdict bytes out."""
    start = time.perf_counter()
    for i in range(0, len(raw), BATCH):
        messages = [parse_message(value) for value in raw[i : i + BATCH]]
        for verdict in classifier.classify_batch(messages, 0):
            orjson.dumps(verdict)
    return time.perf_counter() - start


def _round(
    automaton: ahocorasick.Automaton, classifier: Classifier, messages: list[ChatMessage], raw: list[bytes]
) -> dict[str, float]:
    """One pass over the workload, the contenders taking turns slice by slice: messages/s of each, hits, flagged."""
    spent = dict.fromkeys(("base", "ours", "stage"), 0.0)
    hits = flagged = 0
    for i in range(0, len(messages), SLICE):
        seconds, found = _baseline(automaton, [m.text for m in messages[i : i + SLICE]])
        spent["base"] += seconds
        hits += found
        seconds, found = _classify(classifier, messages[i : i + SLICE])
        spent["ours"] += seconds
        flagged += found
        spent["stage"] += _stage(classifier, raw[i : i + SLICE])
    return {name: len(messages) / seconds for name, seconds in spent.items()} | {"hits": hits, "flagged": flagged}


def _demo_round(
    automaton: ahocorasick.Automaton, classifier: Classifier, messages: list[ChatMessage]
) -> dict[str, float]:
    """One pass over the demo traffic with the default pack, baseline and classifier taking turns slice by slice:
    microseconds a message of each, and how many messages the classifier flagged."""
    base = ours = 0.0
    flagged = 0
    for i in range(0, len(messages), SLICE):
        seconds, _ = _baseline(automaton, [m.text for m in messages[i : i + SLICE]])
        base += seconds
        seconds, found = _classify(classifier, messages[i : i + SLICE])
        ours += seconds
        flagged += found
    per_message = 1e6 / len(messages)
    return {"demo_base_us": base * per_message, "demo_ours_us": ours * per_message, "demo_flagged": flagged}


def _steps(matcher: Matcher, messages: list[ChatMessage]) -> dict[str, float]:
    """Microseconds a message for the steps of ``classify_batch`` that run on every message, over the same batches."""
    batches = [[m.text for m in messages[i : i + BATCH]] for i in range(0, len(messages), BATCH)]
    spent = dict.fromkeys(("normalise", "scan and match", "detectors"), 0.0)
    for texts in batches:
        start = time.perf_counter()
        batch = NormalBatch(texts)
        normalised = time.perf_counter()
        matcher.find_batch(batch)
        matched = time.perf_counter()
        detect_batch(batch)
        spent["normalise"] += normalised - start
        spent["scan and match"] += matched - normalised
        spent["detectors"] += time.perf_counter() - matched
    return {step: seconds / len(messages) * 1e6 for step, seconds in spent.items()}


def _scanned(matcher: Matcher, messages: list[ChatMessage]) -> tuple[float, float]:
    """The share of texts the prefilter lets through to the automaton, and of texts that hold a keyword that may fire
    a rule."""
    scanned = holding = 0
    for i in range(0, len(messages), BATCH):
        batch = NormalBatch([m.text for m in messages[i : i + BATCH]])
        scanned += len(matcher.prefilter.texts(batch.codes))
        holding += len(matcher.find_batch(batch).hits)
    return scanned / len(messages), holding / len(messages)


def _core(pack_dir: str, messages: list[ChatMessage], raw: list[bytes], orders: Connection) -> None:
    """One process of ``_Cores``: starts as a worker does, then runs its share of the workload when told, and
    answers with the seconds it took and how many messages it flagged (none counted for the stage)."""
    classifier = Classifier(load_pack(pack_dir))
    classifier.warm_up()
    gc.collect()
    gc.freeze()
    _stage(classifier, raw[:BATCH])  # the first batch's page faults and caches are not the workload's
    orders.send(None)
    while (order := orders.recv()) is not None:
        orders.send(_classify(classifier, messages) if order == "classifier" else (_stage(classifier, raw), 0))


class _Cores:
    """One process a core, each with its own classifier, as separate workers sharing the partitions would run; the
    workload is split between them. They start once and run the contenders on demand, in every round."""

    def __init__(self, pack_dir: Path, messages: list[ChatMessage], raw: list[bytes], cores: int) -> None:
        context = multiprocessing.get_context("fork")  # the children inherit their share of the workload
        share = (len(messages) + cores - 1) // cores
        self._count = len(messages)
        self._orders: list[Connection] = []
        self._processes = []
        for i in range(cores):
            ours, theirs = context.Pipe()
            part = slice(i * share, (i + 1) * share)
            args = (str(pack_dir), messages[part], raw[part], theirs)
            # Daemons: if the benchmark fails, they go with it rather than wait for orders.
            process = context.Process(target=_core, args=args, daemon=True)
            process.start()
            self._orders.append(ours)
            self._processes.append(process)
        for orders in self._orders:
            orders.recv()  # ready

    def run(self, contender: str) -> tuple[float, int]:
        """Messages/s of every process together (the whole workload over the time the slowest took), and how many
        messages they flagged."""
        for orders in self._orders:
            orders.send(contender)
        answers: list[tuple[float, int]] = [orders.recv() for orders in self._orders]
        return self._count / max(seconds for seconds, _ in answers), sum(flagged for _, flagged in answers)

    def close(self) -> None:
        for orders in self._orders:
            orders.send(None)
        for process in self._processes:
            process.join()
        assert all(p.exitcode == 0 for p in self._processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--messages", type=int, default=200_000, help="messages of the synthetic workload (default: 200,000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the whole workload (default: 5)")
    parser.add_argument(
        "--demo-messages",
        type=int,
        default=20_000,
        help="demo traffic messages classified with the default rule pack in every round; 0 leaves it out "
        "(default: 20,000)",
    )
    args = parser.parse_args()
    if args.messages < 1 or args.rounds < 1 or args.demo_messages < 0:
        parser.error("--messages and --rounds must be at least 1, --demo-messages at least 0")

    print(f"building the workload: 10,000 keywords, {args.messages:,} messages ...", flush=True)
    work = workload.make(args.messages)
    texts = work.texts
    avg = sum(map(len, texts)) / len(texts)
    print(f"  {avg:.1f} characters a message on average, {work.keyword_messages:,} carry a keyword", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        pack_dir = workload.write_pack(work, Path(tmp) / "pack")
        start = time.perf_counter()
        classifier = Classifier(load_pack(pack_dir))
        classifier.warm_up()
        print(f"  rule pack loaded and automaton built in {time.perf_counter() - start:.2f} s", flush=True)
        messages = _messages(texts)
        raw = _raw(messages)
        demo_messages = [parse_message(value) for _, value in demo.messages(args.demo_messages, malformed_ratio=0)]
        default = Classifier(load_pack(DEFAULT_RULES)) if demo_messages else None
        if default is not None:
            default.warm_up()
            demo_automaton = _plain_automaton([term.normal for term in default.pack.terms])
            print(
                f"  default pack: {len(default.pack.terms):,} terms; {len(demo_messages):,} demo messages", flush=True
            )

        cores = os.cpu_count() or 1
        on_cores = _Cores(pack_dir, messages, raw, cores) if cores > 1 else None
        # Built as the classifier builds its own, to time the steps on their own.
        matcher = Matcher(classifier.pack, fires=Scorer(classifier.pack).may_fire)
        automaton = _plain_automaton(work.chinese + work.english)
        gc.freeze()
        print(f"measuring, {args.rounds} rounds ...", flush=True)
        rounds: list[dict[str, float]] = []
        for number in range(1, args.rounds + 1):
            measured = _round(automaton, classifier, messages, raw)
            base, ours, stage = measured["base"], measured["ours"], measured["stage"]
            ratios = {"ours_x": ours / base, "stage_x": stage / base}
            # Every core right after one: a core's share of the machine changes by the minute.
            if on_cores is not None:
                (cores_ours, flagged), (cores_stage, _) = on_cores.run("classifier"), on_cores.run("stage")
                assert flagged == measured["flagged"], "the processes did not classify the workload as one does"
                measured |= {"cores_ours": cores_ours, "cores_stage": cores_stage}
            else:
                measured |= {"cores_ours": ours, "cores_stage": stage}
            ratios |= {"cores_ours_x": measured["cores_ours"] / ours, "cores_stage_x": measured["cores_stage"] / stage}
            if default is not None:
                measured |= _demo_round(demo_automaton, default, demo_messages)
            rounds.append(measured | ratios | _steps(matcher, messages))
            print(
                f"  round {number}: baseline {base:,.0f}, classifier {ours:,.0f} ({ours / base:.2f}x), "
                f"stage {stage:,.0f} ({stage / base:.2f}x); on {cores} cores: classifier "
                f"{measured['cores_ours']:,.0f} ({ratios['cores_ours_x']:.2f}x one), stage "
                f"{measured['cores_stage']:,.0f} ({ratios['cores_stage_x']:.2f}x one) msgs/s",
                flush=True,
            )
            if default is not None:
                print(
                    f"    default pack on demo traffic: baseline {measured['demo_base_us']:.2f} us, classifier "
                    f"{measured['demo_ours_us']:.2f} us a message",
                    flush=True,
                )
        if on_cores is not None:
            on_cores.close()
        scanned, holding = _scanned(matcher, messages)
        demo_scanned = None
        if default is not None:
            demo_scanned = _scanned(Matcher(default.pack, fires=Scorer(default.pack).may_fire), demo_messages)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    base, ours, stage = median("base"), median("ours"), median("stage")
    print()
    print(f"classify stage, {len(texts):,} messages, 10,000 keywords, one core unless said; medians of {args.rounds}")
    print(f"  plain pyahocorasick on str (baseline)   {base:>10,.0f} msgs/s   {rounds[-1]['hits']:,.0f} raw hits")
    print(
        f"  classifier (batches of {BATCH})          {ours:>10,.0f} msgs/s   {median('ours_x'):4.2f}x   "
        f"{rounds[-1]['flagged']:,.0f} flagged"
    )
    print(f"  stage: bytes in, verdict bytes out       {stage:>10,.0f} msgs/s   {median('stage_x'):4.2f}x")
    print(f"on {cores} cores, one process a core, each with a share of the messages (x: against one core, same round)")
    for name, key in (("classifier", "cores_ours"), ("stage", "cores_stage")):
        print(f"  {name:<39}{median(key):>10,.0f} msgs/s   {median(key + '_x'):4.2f}x")
    print("  targets: >= 250,000 msgs/s and >= 3.5x the baseline")
    per_message = 1e6 / ours
    print(f"where the classifier's {per_message:.1f} us a message go (medians):")
    for step in ("normalise", "scan and match", "detectors"):
        print(f"  {step:<16} {median(step):5.1f} us")
    rest = per_message - sum(median(step) for step in ("normalise", "scan and match", "detectors"))
    print(f"  the rest       {rest:5.1f} us   (verdicts, and spans and explanations for the messages that match)")
    print(
        f"the automaton scanned {scanned:.1%} of the texts, where a keyword may start; {holding:.1%} hold one that "
        "may fire a rule"
    )
    if demo_scanned is not None:
        base_us, ours_us = median("demo_base_us"), median("demo_ours_us")
        print()
        print(
            f"default pack ({len(default.pack.terms):,} terms) on demo traffic, {len(demo_messages):,} messages, "
            f"medians of {args.rounds}"
        )
        print(f"  {'plain pyahocorasick on str, the pack terms (baseline)':<56}{base_us:6.2f} us a message")
        print(
            f"  {f'classifier (batches of {BATCH})':<56}{ours_us:6.2f} us a message   "
            f"{base_us / ours_us:4.2f}x   {rounds[-1]['demo_flagged']:,.0f} flagged"
        )
        print(
            f"  the automaton scanned {demo_scanned[0]:.1%} of the texts; {demo_scanned[1]:.1%} hold terms that may "
            "fire a rule, whose hits are placed"
        )
        print(f"demo: {ours_us:.2f} us a message with the default pack, {base_us / ours_us:.2f}x the baseline")


if __name__ == "__main__":
    main()
