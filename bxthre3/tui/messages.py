"""Messages posted up to the app and screens ("attributes down, messages up")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

from .roles import RoleConfig

if TYPE_CHECKING:
    from ..controller.views import ResultsView, StatusView, TaskView


class RolePicked(Message):
    """The user chose a role in the picker."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role


class StartRequested(Message):
    """The role form was filled in and Start pressed."""

    def __init__(self, config: RoleConfig) -> None:
        super().__init__()
        self.config = config


class ClusterSnapshot(Message):
    """A poll of the controller: `status_view` dict and, for the selected DAG, `results_view`.

    High-rate: a burst coalesces into the latest one (toolong's `can_replace` pattern) — unless the
    newer one lacks results, activity or structure the older one carries (they are fetched only when
    changed, so dropping them would leave a pane stale).
    """

    def __init__(
        self,
        status: StatusView,
        results: ResultsView | None,
        activity: dict[str, Any] | None = None,
        structure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.status = status
        self.results = results
        self.activity = activity
        """The task stream and throughput history (`activity`), when fetched this round."""
        self.structure = structure
        """The selected DAG's stages and groups (`structure`), when fetched this round."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ClusterSnapshot) and not (
            (message.results is not None and self.results is None)
            or (message.activity is not None and self.activity is None)
            or (message.structure is not None and self.structure is None)
        )


class ClusterUnreachable(Message):
    """A poll failed (coalesces too: one line per burst is enough)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ClusterUnreachable)


class LogLine(Message):
    """A line for the monitor's log pane, from any worker."""

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error


class DagSubmitted(Message):
    def __init__(self, dag_id: str, name: str) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.name = name


class TaskOutput(Message):
    """One task's `results_view` entry with its output and stderr, for the output viewer.

    ``key`` is what was asked for (DAG, task, state, attempts): a reply to an older question is dropped.
    """

    def __init__(self, key: tuple[Any, ...], task: TaskView | None, error: str = "") -> None:
        super().__init__()
        self.key = key
        self.task = task
        self.error = error
