"""Control flow: conditional blocks (``case``), branches (``switch``, ``ifelse``), joining
branches again (``merge``) and filtering mapped results (``FilterTask``).

Everything here builds ordinary tasks; the engine sees only SKIP signals and triggers.
"""

from flowcore.tasks.control_flow.case import case
from flowcore.tasks.control_flow.conditional import ifelse, merge, switch
from flowcore.tasks.control_flow.filter import FilterTask

__all__ = ["FilterTask", "case", "ifelse", "merge", "switch"]
