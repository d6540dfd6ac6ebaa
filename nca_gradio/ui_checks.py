"""How the studio answers a bad request: one clear `gr.Error` that names the field, and one line in the server log.

Gradio checks an API call's values only as far as its own components need:
a string for a slider or a missing argument fails inside Gradio with a
traceback in the log and `{"error": null}` for the caller. `check_events`
makes a Blocks check each value of the studio's events against its component
first, so the caller reads what was wrong (`Steps must be a number from 10 to
4000, got [1]`), and every expected mistake costs the log one line instead of
a traceback. It hooks the Blocks object, not its class, so the studio's tabs
mounted in a host app's plain `gr.Blocks` are checked too.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable
from typing import Any

import gradio as gr

log = logging.getLogger("nca_gradio.app")
SHOWN_CHARS = 60  # how much of a bad value a message repeats
SHOWN_CHOICES = 8


def user_error(message: str, where: str = "") -> gr.Error:
    """A gr.Error for an expected mistake: Gradio prints no traceback for it, the server log gets one line.

    Gradio renders an error's message as HTML, and messages quote typed values and Hub file names:
    `<`, `>` and `&` are escaped so they show as text (quotes need no escaping outside a tag).
    """
    log.warning("refused %s: %s", where or "a request", " ".join(message.split()))
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def field_name(block: gr.components.Component) -> str:
    return str(block.label or block.elem_id or block.get_block_name())


def _number_range(block: gr.Slider | gr.Number) -> str:
    low, high = block.minimum, block.maximum
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" of at least {low:g}"
    return f" of at most {high:g}" if high is not None else ""


def refusal(block: gr.components.Component, value: Any) -> str | None:
    """Why `value` cannot go to `block` (a message that names the field), or None when it can.

    None is let through where the handler itself answers it (an empty model list, an empty upload box).
    """
    name = field_name(block)
    got = "a value that is not shown" if getattr(block, "type", None) == "password" else shown(value)
    if isinstance(block, (gr.Slider, gr.Number)):
        if value is None and isinstance(block, gr.Number):
            return None
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        inside = number and (block.minimum is None or value >= block.minimum) and (block.maximum is None or value <= block.maximum)
        kind = "a whole number" if getattr(block, "precision", None) == 0 else "a number"
        return None if inside else f"{name} must be {kind}{_number_range(block)}, got {got}"
    if isinstance(block, gr.Checkbox):
        return None if isinstance(value, bool) else f"{name} must be true or false, got {got}"
    if isinstance(block, (gr.Dropdown, gr.Radio)):
        if value is None and isinstance(block, gr.Dropdown) or getattr(block, "allow_custom_value", False) and isinstance(value, str):
            return None
        values = [choice[1] if isinstance(choice, tuple) else choice for choice in block.choices]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value in values:
            return None
        listed = ", ".join(shown(v) for v in values[:SHOWN_CHOICES]) + (", …" if len(values) > SHOWN_CHOICES else "")
        return f"{name} must be one of {listed}, got {got}"
    if isinstance(block, gr.Textbox):
        return None if value is None or isinstance(value, str) else f"{name} must be text, got {got}"
    if isinstance(block, gr.File):
        is_file = isinstance(value, dict) and any(isinstance(value.get(key), str) for key in ("path", "url"))
        return None if value is None or is_file else f"{name} must be a file (gradio_client: handle_file(path)), got {got}"
    return None


def refuse_bad_values(block_fn, inputs: list[Any], state) -> None:
    """Raise one user error for the first value of an event call that its component cannot take, or for missing values."""
    where = f"/{block_fn.api_name}" if block_fn.api_name else str(block_fn.name)
    fields = [block for block in block_fn.inputs if not block.stateful]
    if len(inputs) < len(block_fn.inputs):
        missing = ", ".join(field_name(block) for block in block_fn.inputs[len(inputs) :] if not block.stateful)
        raise user_error(f"{where} takes {len(fields)} values, got {len(inputs)}: missing {missing}", where)
    props = getattr(block_fn, "component_prop_inputs", ()) or ()
    for index, (block, value) in enumerate(zip(block_fn.inputs, inputs)):
        if block.stateful or index in props:
            continue
        if state is not None and block._id in state:
            block = state[block._id]  # this session's version: a model list holds the session's own models
        problem = refusal(block, value)
        if problem:
            raise user_error(problem, where)


CHECKED = "_nca_checked_events"  # the ids of the events a Blocks checks, kept on the Blocks object itself


def check_events(blocks: gr.Blocks, event_ids: Iterable[int]) -> None:
    """From now on `blocks` checks the values of calls to these events before Gradio preprocesses them.

    The first call replaces this one object's `preprocess_data` with a checking one; the events of a host
    app that mounts the studio are not among `event_ids`, so Gradio handles them as it always does.
    """
    checked: set[int] | None = blocks.__dict__.get(CHECKED)
    if checked is None:
        checked = set()
        setattr(blocks, CHECKED, checked)
        preprocess = blocks.preprocess_data

        async def preprocess_data(block_fn, inputs: list[Any], state, explicit_call: bool = False):
            if block_fn._id not in checked:
                return await preprocess(block_fn, inputs, state, explicit_call)
            refuse_bad_values(block_fn, inputs, state)
            try:
                return await preprocess(block_fn, inputs, state, explicit_call)
            except gr.Error as error:
                if not error.print_exception:
                    raise
                where = f"/{block_fn.api_name}" if block_fn.api_name else str(block_fn.name)
                raise user_error(error.message, where) from None

        blocks.preprocess_data = preprocess_data
    checked.update(event_ids)
