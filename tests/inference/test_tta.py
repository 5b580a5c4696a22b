

def test_predictor_settings_reads_every_wrapper_load_predictor_puts_round(tiny_checkpoint):
    from floodwatch.inference import load_predictor
    from floodwatch.inference.base import predictor_settings

    plain = predictor_settings(load_predictor(tiny_checkpoint))
    assert plain == {"tta": None, "downsample": 1, "temperature": None, "refine": None, "weights": None}
    wrapped = load_predictor([tiny_checkpoint, tiny_checkpoint], weights=[1, 3], tta="hflip", temperature=1.5,
                             refine="clean:min=4", downsample=2)
    assert predictor_settings(wrapped) == {"tta": ["hflip"], "downsample": 2, "temperature": 1.5,
                                           "refine": "clean:min=4,t=0.5", "weights": [0.25, 0.75]}
