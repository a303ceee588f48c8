"""The callback types through which stages report progress and events to whoever runs them (the CLI
draws them; a Python caller may pass its own). A leaf module: it imports nothing of tinyedge's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tinyedge.frameworks import BuildResult
    from tinyedge.project import Project

ProgressCallback = Callable[[int, int, str], None]
"""progress(done, total, what): a step measured in bytes or items, e.g. a flasher writing an image."""

CountProgress = Callable[[int, int], None]
"""progress(done, total): samples calibrated, validated, …"""

StepReporter = Callable[[str, str], None]
"""report(step, message): a stage of the chain has finished, with its one-line result."""

Say = Callable[[str], None]
"""say(message): a line of news while a step runs (a place acquired, a round of distillation)."""

BuildFigures = Callable[["Project", "BuildResult"], None]
"""figures(project, result): the build's sizes, shown before the budget is checked."""
