"""Errors meant for people: one line that names the file or setting and the fix."""


class PipelineError(Exception):
    """A problem the user can fix; shown as one line, never as a traceback."""
