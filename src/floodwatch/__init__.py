"""floodwatch: flood mapping from Sentinel-1 SAR, end to end.

From Python (a notebook), with the shipped default model and no training (docs/python_api.md):

    from floodwatch.inference import load_predictor, predict_array, infer_chips
    predictor = load_predictor()                  # the default model (`floodwatch models info`); or a file/name
    prob = predict_array(image, predictor)        # (2, H, W) VV, VH in dB -> (H, W) water probability
    records = infer_chips(predictor, ["chip.tif"], "out")   # what `floodwatch infer` writes

    from floodwatch.mapping import map_scene
    result = map_scene("scene.tif", "floodwatch-s1", "maps")   # what `floodwatch map` writes: COGs, GeoJSON, km²

Errors a user can cause are classes of `floodwatch.errors` (FloodwatchError), each one line naming the input.
"""

__version__ = "0.1.0"
