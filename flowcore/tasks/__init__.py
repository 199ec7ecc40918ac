"""Built-in tasks (``tasks.core``) and control flow (``tasks.control_flow``)."""
