"""``python -m loopml.cli``: the ``loopml`` command where the console script is not at hand.

``loopml demo`` starts its inference server this way, with its own interpreter.
"""

from __future__ import annotations

from loopml.cli._app import main

if __name__ == "__main__":
    main()
