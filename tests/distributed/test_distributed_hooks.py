"""The distributed hooks without processes: shares, seeds, errors, and identity when alone."""

from __future__ import annotations

import pytest

from mlpace.errors import MlpaceError
from mlpace.harness import distributed
from mlpace.harness.workload import RunContext


def ctx(rank: int, world: int) -> RunContext:
    return RunContext(rank=rank, world_size=world, local_rank=rank)


@pytest.mark.parametrize("n,world", [(10, 2), (1000, 3), (7, 4), (3, 5)])
def test_shards_cover_every_item_once(n, world):
    seen = []
    for rank in range(world):
        part = distributed.shard(n, ctx(rank, world))
        seen.extend(range(n)[part])
    assert seen == list(range(n))
    sizes = [len(range(n)[distributed.shard(n, ctx(r, world))]) for r in range(world)]
    assert max(sizes) - min(sizes) <= 1


def test_local_batch_divides_the_global_batch():
    assert distributed.local_batch(128, ctx(1, 4)) == 32
    with pytest.raises(MlpaceError, match="multiple of 3"):
        distributed.local_batch(128, ctx(0, 3))


def test_rank_seeds_differ_and_rank_zero_keeps_the_run_seed():
    seeds = [distributed.rank_seed(1234, ctx(r, 4)) for r in range(4)]
    assert seeds[0] == 1234
    assert len(set(seeds)) == 4
    assert seeds == [distributed.rank_seed(1234, ctx(r, 4)) for r in range(4)]  # reproducible
    assert all(0 <= s < 2**31 for s in seeds)


def test_alone_every_hook_is_the_identity():
    import torch
    alone = ctx(0, 1)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, alone) is model
    assert distributed.unwrap(model) is model
    assert distributed.all_reduce_sum([3, 4], alone) == [3.0, 4.0]
    assert distributed.broadcast("x", alone) == "x"
    assert distributed.any_rank(True, alone) is True and distributed.any_rank(0, alone) is False
    assert distributed.train_sampler(list(range(4)), alone, 0) is None
    data = list(range(5))
    assert distributed.shard_dataset(data, alone) is data
    distributed.barrier(alone)


def test_without_launcher_variables_no_group_is_joined(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with distributed.process_group("cpu") as placement:
        assert placement == {"device": "cpu", "rank": 0, "world_size": 1, "local_rank": 0}


def test_placement_and_timeout_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.placement_from_env() == (3, 8, 1)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(MlpaceError, match="WORLD_SIZE"):
        distributed.placement_from_env()
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout_s() == 12.5
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "-1")
    with pytest.raises(MlpaceError, match="positive"):
        distributed.timeout_s()


def test_setup_failures_become_one_clear_line():
    taken = RuntimeError("wrapper")
    taken.__cause__ = RuntimeError("The server socket has failed to listen on any local network "
                                   "address. port: 29500, code: -98, name: EADDRINUSE")
    err = distributed._connection_error(taken, "localhost:29500", 30)
    assert "already in use" in str(err) and "\n" not in str(err)
    err = distributed._connection_error(TimeoutError("socket timed out"), "10.0.0.1:29500", 30)
    assert "cannot reach the rendezvous at 10.0.0.1:29500 within 30 s" in str(err)


def test_gloo_messages_are_shortened_to_their_first_sentence():
    err = RuntimeError("[/src/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                       "[127.0.0.1]:1234. This is typically caused by a crash.\nmore")
    assert distributed._first_line(err) == "Connection closed by peer [127.0.0.1]:1234"
    assert distributed._is_communication_error(err)
    assert not distributed._is_communication_error(RuntimeError("shape mismatch"))


def test_workloads_without_the_hooks_are_refused_on_several_processes():
    from mlpace.benchmarks import make_workload
    resnet = make_workload("resnet", "mini", {})
    distributed.check_supported(resnet, 2)

    class Plain:
        spec = resnet.spec
    distributed.check_supported(Plain(), 1)
    with pytest.raises(MlpaceError, match="does not train on several processes"):
        distributed.check_supported(Plain(), 2)
