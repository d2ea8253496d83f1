"""Each family: one D step and one G step change the weights they should and no others."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import GankitError
from gankit.objectives import OBJECTIVES
from gankit.training import Trainer
from tests.conftest import tiny_config
from tests.tiny_models import PARTIAL_UPDATES


def _snapshot(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], network: torch.nn.Module) -> set[str]:
    return {k for k, v in network.state_dict().items() if not torch.equal(before[k], v)}


def _parameter_names(network: torch.nn.Module) -> set[str]:
    return {name for name, _ in network.named_parameters()}


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_each_phase_updates_its_networks_and_no_others(family, tmp_path):
    trainer = Trainer(tiny_config(family), tmp_path)
    networks = trainer.objective.networks
    names = [p.name for p in trainer.phases]
    assert "generator" in names and ({"discriminator", "critic"} & set(names)), names
    for phase in trainer.phases:
        before = {name: _snapshot(net) for name, net in networks.items()}
        trainer.run_phase(phase)
        for name, network in networks.items():
            changed = _changed(before[name], network) & _parameter_names(network)
            if name in phase.networks and family in PARTIAL_UPDATES:
                assert changed, f"{phase.name} left {name} unchanged"
            elif name in phase.networks:
                # A parameter may stay only if its gradient was exactly zero, e.g. the output
                # bias of a hinge-loss D at initialisation (the real and fake means cancel).
                still = _parameter_names(network) - changed
                params = dict(network.named_parameters())
                untouched = {k for k in still if params[k].grad is None or params[k].grad.any()}
                assert changed and not untouched, f"{phase.name} left {name}: {sorted(untouched)}"
            else:
                assert not changed, f"{phase.name} changed {name}: {sorted(changed)[:3]}"


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_each_family_resumes_bit_identically_and_exports(family, tmp_path):
    straight = Trainer(tiny_config(family, "train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(tiny_config(family, "train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(tiny_config(family, "train.steps=4"), tmp_path / "resumed", resume=True)
    resumed.fit()
    for name, network in straight.objective.networks.items():
        other = resumed.objective.networks[name].state_dict()
        different = [k for k, v in network.state_dict().items() if not torch.equal(v, other[k])]
        assert not different, f"{family} {name}: {different[:3]} differ after resume"

    import gankit

    loaded = gankit.load(tmp_path / "straight")
    if loaded.is_translator:
        inputs = straight.fixed_inputs["a"][:2]
        scale = straight.objective.scale
        expected = straight.objective.generate_eval({"a": inputs})
        translated = loaded.translate(inputs)
        assert translated.shape[-2:] == (inputs.shape[-2] * scale, inputs.shape[-1] * scale)
        # same weights; the live network may be NHWC (the fast path), the export
        # NCHW: other convolution kernels, equal to float rounding
        expected = straight.objective.metric_view(expected)
        torch.testing.assert_close(translated, expected, rtol=0, atol=1e-5)
        with pytest.raises(GankitError, match="translate"):
            loaded.sample(3, seed=1)
        return
    images = loaded.sample(3, seed=1)
    assert images.shape[0] == 3 and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, loaded.sample(3, seed=1))


# Families whose generator is DCGAN's, with the overrides that select it.
