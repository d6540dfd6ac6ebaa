"""The errors a user can fix: each says in one line what was wrong and what to do, and is shown without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input or surroundings; its message is the whole report."""


# What the command line and the studio show as one line. A training that hits NaN or inf raises FloatingPointError
# (after keeping its last good model); a path that is not there, FileNotFoundError.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, FloatingPointError)
