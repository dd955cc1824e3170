"""Opening an ONNX model with onnxruntime the way every kiln model runner does."""

from __future__ import annotations

from pathlib import Path

from lorakiln.core.errors import ConfigError


def open_session(model_path: Path | str, device: str = "auto"):
    """(InferenceSession, quiet RunOptions) on the device's providers (CUDA when present for
    "auto"); a file onnxruntime cannot load is a ConfigError naming it. The quiet options keep
    onnxruntime's own log silent during runs whose failures the caller reports itself."""
    import onnxruntime as ort

    from lorakiln.tagging.wd import pick_providers

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), opts,
                                       providers=pick_providers(device, ort.get_available_providers()))
    except Exception as e:  # onnxruntime raises its own types; the message is what matters
        raise ConfigError(model_path, f"cannot load the ONNX model: {str(e).splitlines()[0][:300]}") from None
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    return session, quiet
