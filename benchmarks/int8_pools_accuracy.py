"""int8 test accuracy of lenet1 and lenet5_classic with their average pools as exported
before (AVERAGE_POOL_2D) and now (depthwise convolutions, convert.pools_as_depthwise):
each trained 2 epochs on the real Fashion-MNIST with `python -m lenet_keras fit`, int8
calibrated on 500 training images, scored on the 10,000 test images with LiteRT.

    PYTHONPATH=. python benchmarks/int8_pools_accuracy.py
"""
import json, subprocess, sys, tempfile
from pathlib import Path
import numpy as np
root = Path(__file__).resolve().parent.parent
out = {}
for name in ("lenet1", "lenet5_classic"):
    run = Path(tempfile.mkdtemp()) / "run"
    subprocess.run([sys.executable, "-m", "lenet_keras", "fit", "--model", name, "--epochs", "2",
                    "--dataset", "/usr/share/datasets/fashion-mnist", "--run-dir", str(run)],
                   cwd=root, check=True, capture_output=True)
    from lenet_keras.quiet import import_keras
    import_keras()
    from lenet_keras.runs import load_model
    from lenet_keras.sources import load_idx_folder
    from lenet_keras.convert import tflite_graph, fold_plan, export_saved_model, convert_tflite
    from lenet_keras.runtimes import TFLiteModel
    data = load_idx_folder("/usr/share/datasets/fashion-mnist")
    model = load_model(run / "model.keras")
    calib = data.x_train[:500].astype(np.float32)
    keras_acc = float(np.mean(model.predict(data.x_test.astype(np.float32), verbose=0).argmax(1) == data.y_test))
    row = {"keras": keras_acc}
    for pools in (False, True):
        graph, _ = tflite_graph(model, data.x_test[:256].astype(np.float32), fold_plan(model, "int8"), pools)
        src = Path(tempfile.mkdtemp()) / "sm"
        export_saved_model(graph, src, 1)
        content = convert_tflite(src, "int8", lambda: ([im[None]] for im in calib))
        probs = TFLiteModel(content).predict(data.x_test.astype(np.float32))
        row["int8 depthwise pools" if pools else "int8 average pools"] = float(np.mean(np.asarray(probs).argmax(1) == data.y_test))
    out[name] = row
    print(name, row, flush=True)
root / "benchmarks" / "results" / "int8_pools_accuracy.json".write_text(json.dumps(out, indent=2))
