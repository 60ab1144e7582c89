"""Two gloo processes must train exactly like one process on the global batch."""

import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medgap_utils.config import ExperimentConfig, experiment_config
from medgap_utils.losses import GapClosingLoss
from medgap_utils.models import build_model
from medgap_utils.training import fit

pytestmark = pytest.mark.distributed

GLOBAL_BATCH = 8
WORLD_SIZE = 2


def heads_config() -> ExperimentConfig:
    config = experiment_config("clip_atp_cu", profile="ci", mode="heads_only",
                               **{"train.epochs": 2, "train.batch_size": GLOBAL_BATCH, "train.snapshot_size": 4})
    return ExperimentConfig(data=config.data, model=config.model, loss=config.loss, train=config.train)


def end_to_end_config() -> ExperimentConfig:
    return experiment_config("clip", profile="ci", **{"loss.lambda_atp": 0.5, "loss.lambda_cu": 1.0})


def features() -> dict:
    generator = torch.Generator().manual_seed(3)
    return {split: (torch.randn(n, 128, generator=generator), torch.randn(n, 128, generator=generator))
            for split, n in (("train", 32), ("validation", 16))}


def global_batch(model):
    generator = torch.Generator().manual_seed(5)
    images = torch.randn(GLOBAL_BATCH, 3, 64, 64, generator=generator)
    texts = model.tokenizer([f"an axial ct slice number {i} with a nodule" for i in range(GLOBAL_BATCH)])
    return images, texts


def loss_and_gradients(model, images, texts, wrapped=None):
    loss_fn = GapClosingLoss.from_config(end_to_end_config().loss)
    image_embeddings, text_embeddings = (wrapped or model)(images, texts)
    output = loss_fn(image_embeddings, text_embeddings, model.logit_scale.exp(), progress=0.3)
    output.total.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output.total.detach(), gradients


def worker(rank: int, port: int, output: str, run_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.manual_seed(0)
        model = build_model(end_to_end_config())
        images, texts = global_batch(model)
        local = slice(rank * GLOBAL_BATCH // WORLD_SIZE, (rank + 1) * GLOBAL_BATCH // WORLD_SIZE)
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss, gradients = loss_and_gradients(model, images[local], texts[local], wrapped)
        deprecations = [str(warning.message) for warning in caught
                        if issubclass(warning.category, (FutureWarning, DeprecationWarning))]

        result = fit(heads_config(), features=features(), run_dir=run_dir, progress=False, device="cpu")
        if rank == 0:
            heads = {k: v for k, v in result.model.state_dict().items() if "head" in k}
            torch.save({"loss": loss, "gradients": gradients, "heads": heads, "history": result.history,
                        "deprecations": deprecations}, output)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("distributed")
    output = directory / "rank0.pt"
    mp.start_processes(worker, args=(free_port(), str(output), str(directory / "run")), nprocs=WORLD_SIZE,
                       start_method="spawn")
    return torch.load(output, weights_only=False)


def test_loss_matches_global_batch(two_process_run):
    torch.manual_seed(0)
    model = build_model(end_to_end_config())
    loss, _ = loss_and_gradients(model, *global_batch(model))
    assert torch.allclose(two_process_run["loss"], loss, atol=1e-6)


def test_gathered_step_warns_nothing_deprecated(two_process_run):
    assert two_process_run["deprecations"] == []


def test_gradients_match_global_batch(two_process_run):
    torch.manual_seed(0)
    model = build_model(end_to_end_config())
    _, gradients = loss_and_gradients(model, *global_batch(model))
    assert gradients.keys() == two_process_run["gradients"].keys()
    for name, gradient in gradients.items():
        assert torch.allclose(two_process_run["gradients"][name], gradient, atol=1e-6, rtol=1e-4), name


def test_fit_matches_one_process(two_process_run, tmp_path):
    result = fit(heads_config(), features=features(), run_dir=tmp_path, progress=False, device="cpu")
    for name, value in result.model.state_dict().items():
        if "head" in name:
            assert torch.allclose(two_process_run["heads"][name], value, atol=1e-5), name
    losses = [record["train_loss"] for record in result.history[1:]]
    distributed_losses = [record["train_loss"] for record in two_process_run["history"][1:]]
    assert distributed_losses == pytest.approx(losses, abs=1e-5)
