"""The `awq` console entry point: runs the `awq` binary installed inside this package."""
import os
import sys


def binary_path():
    """Path of the bundled `awq` binary (awq_cpp/bin/awq)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "awq")


def require_binary():
    """binary_path(), or RuntimeError if the package lost its binary."""
    exe = binary_path()
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"the awq binary is missing from the package ({exe}); reinstall awq-cpp")
    return exe


def main():
    try:
        exe = require_binary()
    except RuntimeError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe] + sys.argv[1:])  # replaces this process: exit code and signals are awq's


if __name__ == "__main__":
    sys.exit(main())
