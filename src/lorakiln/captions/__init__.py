"""Caption model, pure caption operations with history, sidecar I/O and export."""
