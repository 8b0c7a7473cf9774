"""The application shell: composition root, CLI, doctor, demo, metrics, settings, logs."""
