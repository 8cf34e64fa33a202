"""core.loop, the one training loop: accumulation gives the same step as the whole batch, the head has its own lr,
the statistics every suite records, and on a GPU the precision policy (bf16 autocast over fp32 trainable weights)
and the memory figures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from benchmarks.core.loop import accelerator_for, make_loader, optimizer_for, precision, train
from benchmarks.core.recipe import Recipe

X = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(1))


def toy() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y), len(x)


def trained(micro: int, accum: int, device: str = "cpu", **recipe) -> tuple[torch.nn.Module, dict]:
    accelerator = accelerator_for(device)
    recipe = Recipe(0.1, 1, 8, clip_grad=None, **recipe)
    loader = make_loader(TensorDataset(X, Y), micro, False, 0, 0, accelerator)   # in order: comparable steps
    return train(toy(), loader, recipe, accelerator, loss_fn, grad_accum=accum, progress=False)


def test_accumulated_micro_batches_make_the_same_step_as_the_whole_batch():
    whole, stats = trained(8, 1)
    accumulated, accumulated_stats = trained(2, 4)
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert (stats["optimizer_steps"], accumulated_stats["optimizer_steps"]) == (1, 1)
    assert accumulated_stats["step_losses"] == pytest.approx(stats["step_losses"], abs=1e-6)
    assert stats["train_images"] == 8 and stats["train_images_per_s"] > 0 and stats["gradient_accumulation"] == 1
    assert "peak_memory_mib" not in stats   # memory is a GPU figure


def test_the_head_trains_at_its_own_lr_and_the_rest_at_the_recipes():
    model = toy()
    groups = optimizer_for(model, ["2"], Recipe(1e-3, 1, 8, head_lr=5e-2)).param_groups
    assert [(g["lr"], sum(p.numel() for p in g["params"])) for g in groups] == [(5e-2, 5 * 3 + 3), (1e-3, 6 * 5 + 5)]
    assert [g["lr"] for g in optimizer_for(model, [], Recipe(1e-3, 1, 8)).param_groups] == [1e-3]


def test_warm_up_steps_win_over_a_share_and_max_steps_stop_early():
    accelerator = accelerator_for("cpu")
    loader = make_loader(TensorDataset(X, Y), 2, False, 0, 0, accelerator)
    seen = []

    def recording(model, batch):
        loss, n = loss_fn(model, batch)
        seen.append(len(batch[0]))
        return loss, n

    _, stats = train(toy(), loader, Recipe(0.1, 3, 8, warmup=0.5, warmup_steps=1), accelerator, recording,
                     max_steps=5, progress=False)
    assert stats["optimizer_steps"] == 5 and len(seen) == 5   # 3 epochs of 4 steps, cut at 5


@pytest.mark.cuda
def test_on_a_gpu_trainable_weights_stay_fp32_under_bf16_autocast_and_memory_is_recorded():
    accelerator = accelerator_for("cuda")
    loader = make_loader(TensorDataset(X, Y), 4, True, 0, 0, accelerator)
    model, stats = train(toy(), loader, Recipe(0.1, 2, 8), accelerator, loss_fn, progress=False)
    assert precision(model, accelerator) == {"trainable": ["float32"], "frozen": [], "autocast": "bf16"}
    assert stats["peak_memory_mib"] > 0 and stats["peak_reserved_mib"] >= stats["peak_memory_mib"]
    assert stats["mean_reserved_mib"] > 0 and next(model.parameters()).device.type == "cuda"


def test_keep_best_ends_on_the_weights_of_the_best_evaluated_step():
    from benchmarks.core.loop import BestCheckpoint

    accelerator = accelerator_for("cpu")
    loader = make_loader(TensorDataset(X, Y), 2, False, 0, 0, accelerator)
    snapshots, scripted = [], iter([0.5, 0.2, 0.9, 0.4])   # held-out losses at steps 1, 2, 3, 4: step 2 is best

    def held_out(model):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return next(scripted)

    model, stats = train(toy(), loader, Recipe(0.1, 1, 8), accelerator, loss_fn,
                         keep_best=BestCheckpoint(1, held_out), progress=False)
    assert (stats["best_step"], stats["best_eval_loss"]) == (2, 0.2)
    assert stats["eval_losses"] == [[1, 0.5], [2, 0.2], [3, 0.9], [4, 0.4]]
    for param, kept in zip(model.parameters(), snapshots[1]):
        torch.testing.assert_close(param, kept)
    assert model.training   # evaluation left the model as the loop had it


@pytest.mark.parametrize("shape,reference", [("linear", "get_linear_schedule_with_warmup"),
                                             ("cosine", "get_cosine_schedule_with_warmup")])
def test_schedules_follow_transformers_own(shape, reference):
    import transformers

    from benchmarks.core.loop import lr_schedule

    ours_opt, theirs_opt = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4) for _ in range(2))
    ours = lr_schedule(ours_opt, 50, 5, shape)
    theirs = getattr(transformers, reference)(theirs_opt, num_warmup_steps=5, num_training_steps=50)
    for _ in range(52):
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(theirs_opt.param_groups[0]["lr"], abs=1e-12)
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()


def test_an_unknown_schedule_is_refused():
    from benchmarks.core.recipe import Recipe

    with pytest.raises(ValueError, match=r"^Recipe.schedule must be one of linear, cosine, got 'step'\.$"):
        Recipe(1e-3, 1, 8, schedule="step")
