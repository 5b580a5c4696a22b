"""`evaluate(self_train=...)`: each region scored by the model fine-tuned on that region alone, checked against
doing it by hand one region at a time; the weights come back."""
import pytest
import torch

from floodwatch.data.preprocess import network_input
from floodwatch.data.synthetic import synth_chips
from floodwatch.errors import InvalidArgumentError
from floodwatch.evaluation.evaluate import evaluate
from floodwatch.inference import load_predictor
from floodwatch.inference.selftrain import SelfTraining, self_trained

# the untrained model is unsure of everything: confidence 0.51 labels most pixels, so the steps change weights
OPTIONS = SelfTraining(steps=2, batch=2, crop=32, max_chips=2, learning_rate=0.05, confidence=0.51)


def test_each_region_is_scored_by_its_own_fine_tuned_model(tiny_checkpoint):
    chips = synth_chips(8, size=64, seed=4)
    predictor = load_predictor(tiny_checkpoint, device="cpu")
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    plain = evaluate(predictor, chips, otsu=False, progress=False)
    result = evaluate(predictor, chips, otsu=False, progress=False, self_train=OPTIONS, batch_size=3)
    for k, v in predictor.model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    regions = sorted({c.region for c in chips})
    assert sorted(result["self_training"]) == regions
    assert all(info["steps_run"] == 2 and info["chips"] == 2 for info in result["self_training"].values())
    for region in regions:  # by hand: fine-tune on the region's chips, score them, put the weights back
        own = [c for c in chips if c.region == region]
        with self_trained(predictor, [network_input(c, predictor.preprocessing) for c in own],
                          [c.valid for c in own], OPTIONS):
            alone = evaluate(predictor, own, otsu=False, progress=False, batch_size=3)  # the same batches
        # the probabilities, through their calibration error (the untrained model's masks are all water either way)
        assert result["regions"][region]["confusion"] == alone["confusion"]
        assert result["regions"][region]["ece"] == pytest.approx(alone["ece"], abs=1e-9)
        assert abs(result["regions"][region]["ece"] - plain["regions"][region]["ece"]) > 1e-3


def test_an_ensemble_is_refused_before_any_chip_is_read(tiny_checkpoint):
    both = load_predictor([tiny_checkpoint, tiny_checkpoint], device="cpu")

    class Unreadable:
        def __len__(self):
            return 1

        def __iter__(self):
            raise AssertionError("a chip was read")

    with pytest.raises(InvalidArgumentError, match="self_train: needs one torch checkpoint.*an ensemble"):
        evaluate(both, Unreadable(), otsu=False, progress=False, self_train=OPTIONS)


def test_a_failure_mid_region_puts_the_weights_back_at_once(tiny_checkpoint):
    chips = synth_chips(4, size=64, seed=4)
    predictor = load_predictor(tiny_checkpoint, device="cpu")
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    predict = predictor.predict
    calls = []

    def failing(batch):  # the pseudo-labelling pass works; the first scoring batch fails
        calls.append(len(batch))
        if len(calls) > 1:
            raise RuntimeError("scoring failed")
        return predict(batch)

    predictor.predict = failing
    try:
        evaluate(predictor, chips, otsu=False, progress=False, self_train=OPTIONS, batch_size=1)  # fails in the loop
    except RuntimeError as exc:  # checked while the traceback still holds evaluate's frame (and its generator)
        assert str(exc) == "scoring failed"
        for k, v in predictor.model.state_dict().items():
            torch.testing.assert_close(v, before[k])
    else:
        pytest.fail("evaluate did not fail")
