"""Where SSM Run Command keeps each host's full output, and a page of it.

With ``CloudWatchOutputConfig`` on a SendCommand, SSM writes each host's output of each
document step to the command's log group, one stream per output stream:
``<command id>/<instance id>/<step name>/stdout`` (and ``/stderr``, only when the step wrote
to it). The deploy record keeps only tails; these streams keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass

# The Roadie SSM document's one step (``infra/ssm_document.py`` names it with this): SSM uses
# a schema 2.2 document's step name as the plugin id in the stream names.
DOCUMENT_STEP = "deploy"
OUTPUT_STREAMS = ("stdout", "stderr")


def host_log_group(prefix: str, app: str) -> str:
    """The log group of ``app``'s host output (``/roadie/<stage>/hosts/<app>``)."""
    return f"{prefix.rstrip('/')}/{app}"


def output_stream(command_id: str, instance_id: str, stream: str) -> str:
    """The log stream SSM writes ``stream`` (stdout or stderr) of one host's invocation to."""
    if stream not in OUTPUT_STREAMS:
        raise ValueError(f"no output stream {stream!r}")
    return f"{command_id}/{instance_id}/{DOCUMENT_STEP}/{stream}"


@dataclass(frozen=True)
class LogChunk:
    """Lines read from one log stream, oldest first; ``next_token`` reads on (None: the
    stream had no more lines when it was read)."""

    lines: tuple[str, ...]
    next_token: str | None = None
