"""Execute one notebook headlessly with papermill: the one way run_all.sh and the tests run notebooks.

* Figures inline: the kernel gets matplotlib's inline backend whatever ``MPLBACKEND`` the caller
  has (``agg`` would show nothing), so every ``plt.show()`` leaves an image output in the executed
  notebook; the notebooks still save PNG/PDF through ``lib.reporting.save_figure``.
* Quiet progress: ``COMPANION_HEADLESS=1`` in the kernel makes ``lib.utils.progress_bar`` draw
  rate-limited text bars (papermill stores every refresh) instead of live widgets.
* The kernel's channel is CurveZMQ-encrypted when pyzmq and the kernel support it, so ipykernel
  has no reason to warn that it runs "over TCP without encryption".

    python scripts/run_notebook.py IN.ipynb OUT.ipynb [--cwd DIR] [-p NAME VALUE ...] [--progress-bar]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: what every headless kernel gets in its environment (callers may add more)
KERNEL_ENV = {"MPLBACKEND": INLINE_BACKEND, "COMPANION_HEADLESS": "1"}


@contextmanager
def environment(**overrides: str | None):
    """Set (value) or remove (None) environment variables inside the block, then restore them."""
    old = {k: os.environ.get(k) for k in overrides}
    try:
        for k, v in overrides.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_config():
    from traitlets.config import Config

    config = Config()
    try:
        import zmq

        config.KernelManager.transport_encryption = "auto" if zmq.has("curve") else "disabled"
    except ImportError:  # pragma: no cover - pyzmq comes with jupyter_client
        pass
    return config


def execute(src: str | os.PathLike, dst: str | os.PathLike, parameters: dict | None = None,
            cwd: str | os.PathLike | None = None, env: dict | None = None, progress_bar: bool = False):
    """Run notebook ``src`` with papermill, write the executed copy to ``dst``; return it (a NotebookNode).

    ``env`` adds variables to the kernel's environment on top of :data:`KERNEL_ENV`. Raises
    papermill's ``PapermillExecutionError`` (naming the failing cell) when a cell fails; the
    executed copy with the error is still written to ``dst``.
    """
    import papermill as pm

    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with environment(**{**KERNEL_ENV, **(env or {})}):
        return pm.execute_notebook(str(src), str(dst), parameters=parameters or {},
                                   cwd=str(cwd) if cwd is not None else None, kernel_name="python3",
                                   progress_bar=progress_bar, config=_kernel_config())


def _value(text: str):
    """A parameter from the command line: a JSON literal (1, 0.5, true, null) or else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--cwd", default=None, help="the kernel's working directory")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--progress-bar", action="store_true", help="show papermill's bar over the cells")
    args = parser.parse_args(argv)
    from papermill.exceptions import PapermillExecutionError

    try:
        execute(args.src, args.dst, {k: _value(v) for k, v in args.parameter}, cwd=args.cwd,
                progress_bar=args.progress_bar)
    except PapermillExecutionError as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
