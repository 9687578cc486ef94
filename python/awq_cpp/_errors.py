"""Argument checks shared by the Python front-ends: errors name the argument."""
import os


def check_path(value, name, *, kind="any"):
    """Return `value` as a str path; FileNotFoundError naming `name` if it does not exist.

    kind: "any", "dir" (must be a directory) or "file" (must be a regular file).
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    p = os.fspath(value)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{name}: no such file or directory: '{p}'")
    if kind == "dir" and not os.path.isdir(p):
        raise NotADirectoryError(f"{name}: not a directory: '{p}'")
    if kind == "file" and not os.path.isfile(p):
        raise FileNotFoundError(f"{name}: not a regular file: '{p}'")
    return p


def check_int(value, name, *, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value
